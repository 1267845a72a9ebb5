"""Who is calling the API and what they may do (the login limits: :mod:`cosmic_ray.serve.logins`).

A caller proves who they are with ``Authorization: Bearer <api token>`` or the ``cr_session``
cookie set by ``POST /auth/login``. Writes need an astronomer or admin (401 anonymous, 403
under-privileged); reads are open unless ``COSMIC_RAY_READ_REQUIRES_AUTH`` is true.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import HTTPException, Request

from cosmic_ray.serve.accounts import Accounts, Principal

SESSION_COOKIE = "cr_session"
_BEARER = "bearer "


def principal_from_request(request: Request, accounts: Accounts) -> Principal | None:
    """The authenticated caller, or None when anonymous.

    Raises:
        HTTPException: 401 when a token or session is presented but is not valid.
    """
    header = request.headers.get("authorization")
    if header:
        if not header.lower().startswith(_BEARER) or not header[len(_BEARER) :].strip():
            raise unauthorized("malformed Authorization header: use 'Bearer <token>'")
        principal = accounts.principal_for_token(header[len(_BEARER) :].strip())
        if principal is None:
            raise unauthorized("invalid or revoked token")
        return principal
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        principal = accounts.principal_for_session(session)
        if principal is None:
            raise unauthorized("session expired or logged out: log in again")
        return principal
    return None


def client_address(request: Request, trusted_proxies: list[str] | tuple[str, ...] = ()) -> str:
    """The client's address: the peer's, or the nearest untrusted hop of ``X-Forwarded-For`` when the
    peer is a trusted proxy (a client cannot pick its own address by sending the header itself)."""
    peer = request.client.host if request.client else "unknown"
    if peer not in trusted_proxies:
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):  # the right-most hops were added by our own proxies
        if hop not in trusted_proxies:
            return hop
    return peer


def unauthorized(
    detail: str = "authentication required: send 'Authorization: Bearer <token>' or log in",
) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def require_writer(principal: Principal | None) -> Principal:
    """Raises: HTTPException: 401 anonymous, 403 a viewer."""
    if principal is None:
        raise unauthorized()
    if not principal.can_write:
        raise HTTPException(
            status_code=403, detail=f"role {principal.role!r} may not change this: an astronomer or admin can"
        )
    return principal


def require_reader(principal: Principal | None, read_requires_auth: bool) -> Principal | None:
    if read_requires_auth and principal is None:
        raise unauthorized()
    return principal


def session_cookie(session_id: str, expires: datetime, secure: bool) -> str:
    """The ``Set-Cookie`` value of a login session."""
    max_age = max(0, int((expires - datetime.now(UTC).replace(tzinfo=None)).total_seconds()))
    parts = [f"{SESSION_COOKIE}={session_id}", f"Max-Age={max_age}", "HttpOnly", "SameSite=Strict", "Path=/"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def clear_session_cookie(secure: bool) -> str:
    parts = [f"{SESSION_COOKIE}=", "Max-Age=0", "HttpOnly", "SameSite=Strict", "Path=/"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
