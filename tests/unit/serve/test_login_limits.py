"""Login limits over real HTTP (uvicorn on loopback, the real ``/auth`` routes, a real SQLite event store).

Issue 18, item 3: attempts are counted before argon2 runs (500 parallel guesses do not all reach it),
argon2 work at once is bounded, a shared address is slowed down rather than locked out, the limit is
shared by replicas (two apps, two engines, one store file), and an old session ends at login.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from cosmic_ray.core.config import Settings
from cosmic_ray.serve import context, metrics
from cosmic_ray.serve.coalesce import Coalescer
from cosmic_ray.serve.deps import get_context
from cosmic_ray.serve.logins import LoginThrottle
from cosmic_ray.serve.routes import accounts as account_routes
from cosmic_ray.serve.store import Store

try:
    from web_server import serve_app
except ImportError:  # tests/ made a package
    from tests.web_server import serve_app


class CountingHasher(PasswordHasher):
    """argon2 as the accounts use it, counting verifications and how many ran at once."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.calls += 1
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.active -= 1


async def _no_model(items: list) -> list:
    raise AssertionError("login never calls the model")


def replica(settings: Settings) -> tuple[FastAPI, Store]:
    """An ingress replica's login: its own engine on the store file, its own context, the real router."""
    store = Store.open(settings.event_store_url)
    ctx = context.IngressContext(
        settings=settings,
        events=store.events,
        accounts=store.accounts,
        model=None,  # type: ignore[arg-type]  # login never calls the model
        coalescer=Coalescer(_no_model),
        logins=LoginThrottle(
            store.engine,
            settings.login_attempts_per_account,
            settings.login_attempts_per_address,
            settings.login_window_s,
            settings.login_concurrency,
            settings.login_queue_s,
        ),
        metrics=metrics.api_metrics(),
    )
    app = FastAPI()
    app.include_router(account_routes.router)
    app.dependency_overrides[get_context] = lambda: ctx
    return app, store


@pytest.fixture
def make_replica(tmp_path):
    """``make_replica(**settings)`` -> ``(base_url, store)`` of a running replica; all share one store file."""
    with_servers: list[Any] = []

    def make(**overrides: Any) -> tuple[str, Store]:
        app, store = replica(Settings(home=tmp_path, **overrides))
        server = serve_app(app)
        with_servers.append((server, store))
        return server.__enter__(), store

    yield make
    for server, store in with_servers:
        server.__exit__(None, None, None)
        store.close()


def login(base: str, username: str, password: str, **kw: Any) -> httpx.Response:
    return httpx.post(f"{base}/auth/login", json={"username": username, "password": password}, timeout=60, **kw)


def test_500_parallel_guesses_do_not_all_reach_argon2(make_replica):
    base, store = make_replica(login_attempts_per_account=5, login_attempts_per_address=1000)
    hasher = CountingHasher()
    store.accounts.hasher = hasher
    store.accounts.add_user("target", "the real password 9", role="viewer")

    async def guesses() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
            return await asyncio.gather(
                *(
                    client.post("/auth/login", json={"username": "target", "password": f"guess {i:04d}"})
                    for i in range(500)
                )
            )

    answers = asyncio.run(guesses())
    codes = [a.status_code for a in answers]
    assert hasher.calls <= 5, f"{hasher.calls} guesses reached argon2"
    assert codes.count(401) == hasher.calls and codes.count(429) == 500 - hasher.calls
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers if a.status_code == 429)
    # the right password is slowed down too (the account's bucket is full), not refused for good
    blocked = login(base, "target", "the real password 9")
    assert blocked.status_code == 429 and 1 <= int(blocked.headers["retry-after"]) <= 60  # window 300 s / 5


def test_argon2_work_at_once_is_bounded(make_replica):
    base, store = make_replica(login_attempts_per_address=1000, login_concurrency=2, login_queue_s=120)
    hasher = CountingHasher()
    store.accounts.hasher = hasher

    async def spray() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            return await asyncio.gather(
                *(
                    client.post("/auth/login", json={"username": f"user{i}", "password": "a password guess"})
                    for i in range(12)
                )
            )

    codes = [a.status_code for a in asyncio.run(spray())]
    assert codes == [401] * 12  # every account tried once: each reaches argon2, two at a time
    assert hasher.calls == 12 and hasher.peak <= 2


def test_a_shared_address_is_slowed_down_not_locked_out(make_replica):
    # everyone behind one proxy shares 127.0.0.1; its bucket holds 4 attempts and leaks one per 3 s
    base, store = make_replica(login_attempts_per_address=4, login_attempts_per_account=50, login_window_s=12.0)
    store.accounts.add_user("alice", "alice has a long password", role="viewer")
    store.accounts.add_user("bob", "bob has a long password too", role="viewer")

    async def spray() -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            answers = await asyncio.gather(
                *(
                    client.post("/auth/login", json={"username": f"mallory{i}", "password": "spray password 1"})
                    for i in range(12)
                )
            )
        return [a.status_code for a in answers]

    codes = asyncio.run(spray())
    assert codes.count(401) + codes.count(429) == 12 and codes.count(429) >= 1
    answer = login(base, "alice", "alice has a long password")
    if answer.status_code == 429:  # slowed: one attempt leaks out every 3 s, so the wait is short
        wait = int(answer.headers["retry-after"])
        assert 1 <= wait <= 3, f"told to wait {wait} s: locked out, not slowed down"
        time.sleep(wait)
        answer = login(base, "alice", "alice has a long password")
    assert answer.status_code == 200
    # a success takes its attempt back: others behind the same address are not slowed by it
    assert login(base, "bob", "bob has a long password too").status_code == 200


def test_the_limit_is_shared_by_replicas(make_replica):
    first, store = make_replica(login_attempts_per_account=5, login_attempts_per_address=1000)
    second, _ = make_replica(login_attempts_per_account=5, login_attempts_per_address=1000)
    store.accounts.add_user("carol", "carol has a long password", role="viewer")
    codes = [login((first, second)[i % 2], "carol", f"wrong guess {i}").status_code for i in range(6)]
    assert codes == [401] * 5 + [429]
    assert login(first, "Carol", "another guess 7").status_code == 429  # the account, whatever its case


def test_login_ends_the_old_session(make_replica):
    base, store = make_replica()
    store.accounts.add_user("dave", "dave has a long password", role="viewer")
    planted, _ = store.accounts.create_session("dave", timedelta(hours=1))
    answer = login(base, "dave", "dave has a long password", cookies={"cr_session": planted})
    assert answer.status_code == 200
    fresh = answer.cookies["cr_session"]
    assert fresh != planted
    assert httpx.get(f"{base}/auth/me", cookies={"cr_session": planted}, timeout=30).status_code == 401
    assert httpx.get(f"{base}/auth/me", cookies={"cr_session": fresh}, timeout=30).status_code == 200
