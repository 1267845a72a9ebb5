"""Accounts hardening (issue 18, items 3 and 11) over real HTTP and a real SQLite event store.

The password policy (12 characters, not a common password: zxcvbn's list), API tokens that expire
and are revoked on a password change, an older store gaining the token lifetime column, usernames
hidden from anonymous ``GET /classes``, credentials stripped from ``GET /model``, and only ``https:``
links passed on from NASA's APOD answer (a stand-in NASA server on loopback: the real one is not
reachable from tests).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cosmic_ray.core.config import Settings
from cosmic_ray.serve import context, metrics, web
from cosmic_ray.serve.coalesce import Coalescer
from cosmic_ray.serve.db import StoreError, utcnow
from cosmic_ray.serve.deps import get_context
from cosmic_ray.serve.logins import LoginThrottle
from cosmic_ray.serve.routes import accounts as account_routes
from cosmic_ray.serve.routes import classes as class_routes
from cosmic_ray.serve.routes import model as model_routes
from cosmic_ray.serve.store import Store

try:
    from web_server import serve_app
except ImportError:  # tests/ made a package
    from tests.web_server import serve_app

#: What a model replica answers to ``info()`` after a failed reload against a tracking server with a password.
REPLICA_INFO: dict[str, Any] = {
    "name": "cosmic-ray",
    "version": "3",
    "run_id": "abc123",
    "classes": ["SN Ia", "AGN"],
    "registered_classes": ["Weird"],
    "meta": {"tracking": "https://ci-bot:example-tracking-pass@mlflow.example.org/"},
    "last_reload_error": "version 4: MlflowException: no model cosmic-ray@production in "
    "postgresql://mlflow:example-db-pass@db.internal:5432/mlflow?sslmode=require&password=example-query",
}


@dataclass(frozen=True)
class ReplicaAnswers(context.IngressContext):
    """The ingress context, with the model replica's ``info()`` answer given (no Ray cluster in unit tests)."""

    info: dict[str, Any] = field(default_factory=dict)

    async def model_info(self) -> dict[str, Any]:
        return self.info


async def _no_model(items: list) -> list:
    raise AssertionError("these routes never predict")


@pytest.fixture
def api(tmp_path):
    """``(base_url, store)``: the real account, class and model routes on uvicorn over a SQLite store."""
    settings = Settings(home=tmp_path)
    store = Store.open(settings.event_store_url)
    ctx = ReplicaAnswers(
        settings=settings,
        events=store.events,
        accounts=store.accounts,
        model=None,  # type: ignore[arg-type]  # model_info is answered above
        coalescer=Coalescer(_no_model),
        logins=LoginThrottle(store.engine, 5, 20, 300),
        metrics=metrics.api_metrics(),
        info=REPLICA_INFO,
    )
    app = FastAPI()
    for router in (account_routes.router, class_routes.router, model_routes.router):
        app.include_router(router)
    app.dependency_overrides[get_context] = lambda: ctx
    with serve_app(app) as url:
        yield url, store
    store.close()


def me(base: str, token: str) -> int:
    return httpx.get(f"{base}/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code


# ------------------------------------------------------------------ passwords (ASVS V2.1.1, V2.1.7)
def test_passwords_need_12_characters_and_must_not_be_common(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'events.db'}")
    with pytest.raises(StoreError, match="12 characters"):
        store.accounts.add_user("short", "eleven char", role="viewer")
    with pytest.raises(StoreError, match="128 characters"):
        store.accounts.add_user("long", "a very long passphrase " * 6, role="viewer")  # 138 characters
    store.accounts.add_user("sixty-four", "plum orbit lantern " * 3 + "seven42", role="viewer")  # 64 characters
    for common in ("qwerty123456", "1qaz2wsx3edc", "Password123456", "iloveyou 2024!", "sonyericsson"):
        with pytest.raises(StoreError, match="common"):
            store.accounts.add_user("weak", common, role="viewer")
    assert store.accounts.get_user("weak") is None
    store.accounts.add_user("vera", "plum orbit 48 lantern", role="viewer")
    with pytest.raises(StoreError, match="common"):
        store.accounts.set_password("vera", "football12345")
    assert store.accounts.authenticate("vera", "plum orbit 48 lantern") is not None
    store.close()


# ------------------------------------------------------------------ API tokens
def test_tokens_expire(api):
    base, store = api
    store.accounts.add_user("cron", "the cron job password", role="viewer")
    short = store.accounts.create_token("cron", "short-lived", ttl=timedelta(seconds=5))
    lasting = store.accounts.create_token("cron", "default lifetime")
    assert lasting.expires_at is not None and timedelta(days=29) < lasting.expires_at - short.expires_at <= timedelta(
        days=30
    )
    assert me(base, short.token) == 200
    assert short.expires_at is not None
    time.sleep(max(0.0, (short.expires_at - utcnow()).total_seconds()) + 0.2)
    assert me(base, short.token) == 401 and me(base, lasting.token) == 200
    with pytest.raises(StoreError):
        store.accounts.create_token("cron", "backwards", ttl=timedelta(seconds=-1))
    listed = {t["name"]: t for t in store.accounts.list_tokens("cron")}
    assert listed["short-lived"]["expires_at"] is not None


def test_a_password_change_revokes_tokens_and_ends_sessions(api):
    base, store = api
    store.accounts.add_user("erin", "erin's first password", role="astronomer")
    token = store.accounts.create_token("erin", "script").token
    session, _ = store.accounts.create_session("erin", timedelta(hours=1))
    assert me(base, token) == 200
    store.accounts.set_password("erin", "erin's second password")
    assert me(base, token) == 401
    assert httpx.get(f"{base}/auth/me", cookies={"cr_session": session}, timeout=30).status_code == 401
    assert all(t["revoked_at"] is not None for t in store.accounts.list_tokens("erin"))
    assert me(base, store.accounts.create_token("erin", "new").token) == 200


def test_an_older_store_gains_token_lifetimes_and_its_tokens_without_one_are_refused(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the api_tokens table as it shipped before tokens expired
        db.executescript(
            """
            CREATE TABLE users (username VARCHAR(64) PRIMARY KEY, role VARCHAR(16), password_hash VARCHAR(256),
                                created_at DATETIME, updated_at DATETIME);
            CREATE TABLE api_tokens (id INTEGER PRIMARY KEY AUTOINCREMENT, token_hash VARCHAR(64) UNIQUE,
                                     username VARCHAR(64) REFERENCES users(username) ON DELETE CASCADE,
                                     name VARCHAR(128), created_at DATETIME, revoked_at DATETIME);
            """
        )
    store = Store.open(f"sqlite:///{path}")
    store.accounts.add_user("old", "an old user's password", role="viewer")
    token = store.accounts.create_token("old", "new")
    assert store.accounts.principal_for_token(token.token) is not None
    with store.engine.begin() as conn:  # a token made before: no lifetime
        conn.exec_driver_sql("UPDATE api_tokens SET expires_at = NULL")
    assert store.accounts.principal_for_token(token.token) is None
    store.close()


# ------------------------------------------------------------------ what anonymous readers see
def test_anonymous_readers_do_not_see_who_registered_a_class(api):
    base, store = api
    store.accounts.add_user("ada", "ada's long password", role="astronomer")
    store.events.add_class("Weird", [{"object_id": "ZTF1", "points": []}], "ada")
    anonymous = httpx.get(f"{base}/classes", timeout=30)
    assert anonymous.status_code == 200
    weird = [c for c in anonymous.json() if c["name"] == "Weird"]
    assert weird and weird[0]["created_by"] is None and "ada" not in anonymous.text
    token = store.accounts.create_token("ada", "reader").token
    signed_in = httpx.get(f"{base}/classes", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert [c["created_by"] for c in signed_in.json() if c["name"] == "Weird"] == ["ada"]


def test_model_info_carries_no_credentials(api):
    base, _ = api
    answer = httpx.get(f"{base}/model", timeout=30)
    assert answer.status_code == 200
    for secret in ("example-db-pass", "example-query", "example-tracking-pass", "ci-bot:"):
        assert secret not in answer.text
    info = answer.json()
    assert "postgresql://***@db.internal:5432/mlflow" in info["last_reload_error"]
    assert info["meta"]["tracking"] == "https://***@mlflow.example.org/" and info["version"] == "3"


def test_web_config_carries_no_credentials(tmp_path):
    settings = Settings(home=tmp_path, mlflow_tracking_uri="postgresql://ml:example-pw-in-uri@db/mlflow")
    shown = web.web_config(settings).model_dump_json()
    assert "example-pw-in-uri" not in shown and "postgresql://***@db/mlflow" in shown


# ------------------------------------------------------------------ APOD links
def _nasa(answer: dict[str, Any]) -> FastAPI:
    nasa = FastAPI()

    @nasa.get("/planetary/apod")
    async def apod() -> dict[str, Any]:
        return answer

    return nasa


@pytest.mark.parametrize(
    ("answer", "image", "page"),
    [
        (
            {"media_type": "image", "url": "https://apod.nasa.gov/a.jpg", "hdurl": "javascript:alert(document.cookie)"},
            "https://apod.nasa.gov/a.jpg",
            "https://apod.nasa.gov/a.jpg",
        ),
        (
            {"media_type": "image", "url": "http://apod.example/a.jpg", "hdurl": "https://apod.nasa.gov/hd.jpg"},
            None,
            None,
        ),
        (
            {"media_type": "video", "url": "https://youtube.example/v", "thumbnail_url": "data:image/png;base64,AA"},
            None,
            None,
        ),
    ],
    ids=["javascript-page", "http-image", "data-thumbnail"],
)
def test_apod_passes_on_https_links_only(answer, image, page, monkeypatch):
    monkeypatch.setattr(web, "_APOD_CACHE", {})
    with serve_app(_nasa({"title": "A picture", **answer})) as nasa:
        monkeypatch.setattr(web, "APOD_URL", f"{nasa}/planetary/apod")
        info = asyncio.run(web.fetch_apod("TEST_KEY"))
    assert info.image_url == image and info.page_url == page
    assert info.available is (image is not None)
    if image is None:
        assert info.reason
