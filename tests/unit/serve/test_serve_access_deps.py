"""The routes' access dependencies (``Reader``, ``CurrentUser``, ``Writer``, ``Admin``) over real HTTP:
uvicorn on loopback, a real SQLite event store, tokens and session cookies of real users.

The served app's routes use the same dependencies (tests/integration/test_security.py checks them there); this
pins the whole 401/403 matrix, including reads that require a login, without Ray.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from cosmic_ray.core.config import Settings
from cosmic_ray.serve import context
from cosmic_ray.serve.deps import Admin, CurrentUser, Reader, Writer
from cosmic_ray.serve.store import Store

try:
    from web_server import serve_app
except ImportError:  # tests/ made a package
    from tests.web_server import serve_app

try:
    from api_context import model_free_context
except ImportError:  # tests/ made a package
    from tests.api_context import model_free_context

ROLES = ("viewer", "astronomer", "admin")


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/read")
    async def read(caller: Reader) -> dict:
        return {"caller": caller.username if caller else None}

    @app.get("/me")
    async def me(caller: CurrentUser) -> dict:
        return {"caller": caller.username}

    @app.post("/write")
    async def write(caller: Writer) -> dict:
        return {"caller": caller.username}

    @app.post("/admin")
    async def admin(caller: Admin) -> dict:
        return {"caller": caller.username}

    return app


@pytest.fixture(params=[False, True], ids=["reads-open", "reads-need-login"])
def api(request, tmp_path, monkeypatch):
    """``(base_url, store, read_requires_auth)`` of the test app with its ingress context configured."""
    settings = Settings(home=tmp_path, read_requires_auth=request.param)
    store = Store.open(settings.event_store_url)
    for role in ROLES:
        store.accounts.add_user(role, f"{role} password 123", role=role)
    ctx = model_free_context(settings, store)
    monkeypatch.setattr(context, "_CONTEXT", {})
    context.configure(ctx)
    with serve_app(_app()) as url:
        yield url, store, request.param
    store.close()


def _callers(store: Store) -> dict[str, dict]:
    """Request kwargs per kind of caller: anonymous, forged token, a token and a session per role."""
    out: dict[str, dict] = {
        "anonymous": {},
        "forged": {"headers": {"Authorization": "Bearer crt_" + "x" * 43}},
        "malformed": {"headers": {"Authorization": "Basic dmljOnB3"}},
    }
    for role in ROLES:
        out[f"{role}-token"] = {"headers": {"Authorization": f"Bearer {store.accounts.create_token(role).token}"}}
        session, _ = store.accounts.create_session(role, timedelta(hours=1))
        out[f"{role}-session"] = {"cookies": {"cr_session": session}}
    return out


def test_every_route_answers_each_kind_of_caller_as_declared(api):
    url, store, reads_need_login = api
    callers = _callers(store)
    expected = {
        # caller: (read, me, write, admin)
        "anonymous": (401 if reads_need_login else 200, 401, 401, 401),
        "forged": (401 if reads_need_login else 200, 401, 401, 401),
        "malformed": (401 if reads_need_login else 200, 401, 401, 401),
        "viewer-token": (200, 200, 403, 403),
        "viewer-session": (200, 200, 403, 403),
        "astronomer-token": (200, 200, 200, 403),
        "astronomer-session": (200, 200, 200, 403),
        "admin-token": (200, 200, 200, 200),
        "admin-session": (200, 200, 200, 200),
    }
    with httpx.Client(base_url=url, timeout=30) as client:
        for caller, kwargs in callers.items():
            client.cookies.clear()
            got = (
                client.get("/read", **kwargs).status_code,
                client.get("/me", **kwargs).status_code,
                client.post("/write", **kwargs).status_code,
                client.post("/admin", **kwargs).status_code,
            )
            assert got == expected[caller], (caller, got)
        anonymous = client.post("/write")
        assert anonymous.headers.get("www-authenticate") == "Bearer"
        token = callers["astronomer-token"]
        assert client.post("/write", **token).json() == {"caller": "astronomer"}
        read = client.get("/read", **token).json()
        assert read == {"caller": "astronomer" if reads_need_login else None}  # open reads do not look the caller up
