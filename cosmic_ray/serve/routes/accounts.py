"""The web login: ``POST /auth/login``, ``POST /auth/logout`` (anyone), ``GET /auth/me`` (signed in)."""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

import asyncio
import logging
from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from cosmic_ray.serve import auth
from cosmic_ray.serve.deps import Ctx, CurrentUser
from cosmic_ray.serve.schemas import ErrorResponse, LoginRequest, Me

log = logging.getLogger(__name__)

router = APIRouter()


@router.post("/auth/login", response_model=Me, responses={401: {"model": ErrorResponse}, 429: {"model": ErrorResponse}})
async def login(body: LoginRequest, request: Request, ctx: Ctx) -> JSONResponse:
    """Check a username and password; on success set the ``cr_session`` cookie."""
    address = auth.client_address(request, ctx.settings.trusted_proxies)
    account = body.username.lower()
    wait = max(ctx.logins_by_address.retry_after(address), ctx.logins_by_account.retry_after(account))
    if wait:
        raise HTTPException(
            status_code=429, detail="too many login attempts: try again later", headers={"Retry-After": str(wait)}
        )
    principal = await asyncio.to_thread(ctx.accounts.authenticate, body.username, body.password)
    if principal is None:  # failures count, so users behind one shared address are not locked out by logging in
        ctx.logins_by_address.hit(address)
        ctx.logins_by_account.hit(account)
        log.info("failed login for an account from %s", address)
        raise HTTPException(status_code=401, detail="invalid username or password")
    ctx.logins_by_account.reset(account)
    session_id, expires = await asyncio.to_thread(
        ctx.accounts.create_session, principal.username, timedelta(hours=ctx.settings.session_hours)
    )
    response = JSONResponse(Me(username=principal.username, role=principal.role).model_dump())
    response.headers.append("set-cookie", auth.session_cookie(session_id, expires, ctx.settings.cookie_secure))
    return response


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
