"""The web login: ``POST /auth/login``, ``POST /auth/logout`` (anyone), ``GET /auth/me`` (signed in)."""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

import asyncio
import logging
from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from cosmic_ray.serve import auth
from cosmic_ray.serve.deps import Ctx, CurrentUser
from cosmic_ray.serve.logins import LoginBusy
from cosmic_ray.serve.schemas import ErrorResponse, LoginRequest, Me

log = logging.getLogger(__name__)

router = APIRouter()


@router.post("/auth/login", response_model=Me, responses={401: {"model": ErrorResponse}, 429: {"model": ErrorResponse}})
async def login(body: LoginRequest, request: Request, ctx: Ctx) -> JSONResponse:
    """Check a username and password; on success end the caller's old session and set a new ``cr_session`` cookie.

    The attempt is counted (per account and per client address, shared by every replica) before the
    password is checked; over the limit the answer is 429 with ``Retry-After``.
    """
    address = auth.client_address(request, ctx.settings.trusted_proxies)
    account = body.username.lower()
    wait = await asyncio.to_thread(ctx.logins.admit, account, address)
    if wait:
        raise _too_many(wait)
    try:
        async with ctx.logins.checking():
            principal = await asyncio.to_thread(ctx.accounts.authenticate, body.username, body.password)
    except LoginBusy as exc:
        raise _too_many(1) from exc
    if principal is None:
        log.info("failed login for an account from %s", address)
        raise HTTPException(status_code=401, detail="invalid username or password")
    await asyncio.to_thread(ctx.logins.succeeded, account, address)
    old_session = request.cookies.get(auth.SESSION_COOKIE)
    if old_session:  # a session id planted before login (fixation) or a stale one ends here
        await asyncio.to_thread(ctx.accounts.delete_session, old_session)
    session_id, expires = await asyncio.to_thread(
        ctx.accounts.create_session, principal.username, timedelta(hours=ctx.settings.session_hours)
    )
    response = JSONResponse(Me(username=principal.username, role=principal.role).model_dump())
    response.headers.append("set-cookie", auth.session_cookie(session_id, expires, ctx.settings.cookie_secure))
    return response


def _too_many(retry_after: int) -> HTTPException:
    return HTTPException(
        status_code=429, detail="too many login attempts: try again later", headers={"Retry-After": str(retry_after)}
    )


@router.post("/auth/logout", status_code=204)
async def logout(request: Request, ctx: Ctx) -> Response:
    """End the cookie's session (if any) and clear the cookie."""
    session = request.cookies.get(auth.SESSION_COOKIE)
    if session:
        await asyncio.to_thread(ctx.accounts.delete_session, session)
    response = Response(status_code=204)
    response.headers.append("set-cookie", auth.clear_session_cookie(ctx.settings.cookie_secure))
    return response


@router.get("/auth/me", response_model=Me, responses={401: {"model": ErrorResponse}})
async def me(principal: CurrentUser) -> Me:
    return Me(username=principal.username, role=principal.role)
