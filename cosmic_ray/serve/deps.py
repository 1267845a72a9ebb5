"""FastAPI dependencies of the routes: the ingress context, and who may call (declared, not called).

A route's signature says who may call it (as full-stack-fastapi-template's ``api/deps.py``):

- ``Reader``: anyone, unless ``COSMIC_RAY_READ_REQUIRES_AUTH`` (then a token or session: 401 without);
  the caller, or None when reads are open.
- ``Caller``: the signed-in caller, or None when anonymous (what a route shows may depend on it).
- ``CurrentUser``: any signed-in caller (401 without).
- ``Writer``: an astronomer or admin (401 anonymous, 403 a viewer).
- ``Admin``: an admin (401 anonymous, 403 any other role).

A token or session that is presented but invalid is a 401 wherever the caller is checked.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at route definition.

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from cosmic_ray.serve import auth, context
from cosmic_ray.serve.accounts import Principal
from cosmic_ray.serve.context import IngressContext
from cosmic_ray.serve.schemas import ErrorResponse


def get_context() -> IngressContext:
    """The ingress context of this process."""
    return context.current()


Ctx = Annotated[IngressContext, Depends(get_context)]


def optional_principal(request: Request, ctx: Ctx) -> Principal | None:
    """The caller, or None when anonymous. Raises: HTTPException: 401 for an invalid token or session."""
    return auth.principal_from_request(request, ctx.accounts)


def require_reader(request: Request, ctx: Ctx) -> Principal | None:
    """Reads are open unless the settings say otherwise; then any signed-in caller."""
    if not ctx.settings.read_requires_auth:
        return None
    return auth.require_reader(auth.principal_from_request(request, ctx.accounts), True)


def require_user(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
    """Any signed-in caller. Raises: HTTPException: 401 anonymous."""
    if principal is None:
        raise auth.unauthorized()
    return principal


def require_writer(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
    """An astronomer or admin. Raises: HTTPException: 401 anonymous, 403 a viewer."""
    return auth.require_writer(principal)


def require_admin(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
    """An admin. Raises: HTTPException: 401 anonymous, 403 any other role."""
    if principal is None:
        raise auth.unauthorized()
    if principal.role != "admin":
        raise HTTPException(status_code=403, detail=f"role {principal.role!r} may not do this: an admin can")
    return principal


Reader = Annotated[Principal | None, Depends(require_reader)]
Caller = Annotated[Principal | None, Depends(optional_principal)]
CurrentUser = Annotated[Principal, Depends(require_user)]
Writer = Annotated[Principal, Depends(require_writer)]
Admin = Annotated[Principal, Depends(require_admin)]

#: ``responses=`` of a route that checks its caller.
AUTH_ERRORS: dict[int | str, dict[str, object]] = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}}
