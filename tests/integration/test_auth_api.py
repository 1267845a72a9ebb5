"""Accounts over real HTTP on the served app: login cookie, /auth/me, logout, rate limits, roles, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx


def test_login_sets_a_strict_http_only_cookie_and_me_answers(served, accounts):
    with httpx.Client(base_url=served, timeout=60) as client:
        assert client.get("/auth/me").status_code == 401
        answer = client.post("/auth/login", json={"username": "ada", "password": "astronomer password 1"})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"username": "ada", "role": "astronomer"}
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("cr_session=")
        for attribute in ("HttpOnly", "SameSite=Strict", "Path=/"):
            assert attribute in cookie
        assert "Secure" not in cookie  # COSMIC_RAY_COOKIE_SECURE is off in tests
        assert "astronomer password 1" not in answer.text
        assert client.get("/auth/me").json() == {"username": "ada", "role": "astronomer"}
        assert client.post("/auth/logout").status_code == 204
        client.cookies.clear()
    # the old session id no longer works even if replayed
    session_id = cookie.split(";")[0].split("=", 1)[1]
    replay = httpx.get(f"{served}/auth/me", cookies={"cr_session": session_id}, timeout=30)
    assert replay.status_code == 401


def test_bad_logins_get_a_generic_401_then_429_with_retry_after(served, event_store):
    event_store.accounts.add_user("mallory-target", "the real password 9", role="viewer")
    unknown = httpx.post(f"{served}/auth/login", json={"username": "nobody", "password": "whatever123"}, timeout=60)
    wrong = httpx.post(
        f"{served}/auth/login", json={"username": "mallory-target", "password": "guess number 1"}, timeout=60
    )
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()  # no hint whether the account exists
    for i in range(2, 6):
        assert (
            httpx.post(
                f"{served}/auth/login", json={"username": "mallory-target", "password": f"guess number {i}"}, timeout=60
            ).status_code
            == 401
        )
    blocked = httpx.post(
        f"{served}/auth/login", json={"username": "mallory-target", "password": "the real password 9"}, timeout=60
    )
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert httpx.post(f"{served}/auth/login", json={"username": "mallory-target"}, timeout=30).status_code == 422


def test_writes_need_an_astronomer(served, accounts):
    body = {"name": "Anything", "object_ids": ["ZTF18abcdefg"]}
    anonymous = httpx.post(f"{served}/classes", json=body, timeout=30)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    viewer = httpx.post(
        f"{served}/classes", json=body, headers={"Authorization": f"Bearer {accounts['viewer']}"}, timeout=30
    )
    assert viewer.status_code == 403
    forged = httpx.post(f"{served}/classes", json=body, headers={"Authorization": "Bearer crt_not-a-token"}, timeout=30)
    assert forged.status_code == 401
    assert (
        httpx.delete(
            f"{served}/classes/Anything", headers={"Authorization": f"Bearer {accounts['viewer']}"}, timeout=30
        ).status_code
        == 403
    )
    assert httpx.post(f"{served}/model/reload", timeout=30).status_code == 401
    reload = httpx.post(
        f"{served}/model/reload", headers={"Authorization": f"Bearer {accounts['astronomer']}"}, timeout=60
    )
    assert reload.status_code == 200 and reload.json()["version"]
    # reads stay open by default
    assert httpx.get(f"{served}/classes", timeout=30).status_code == 200


def test_cli_users_and_tokens(settings, event_store, served):
    env = {**os.environ, "COSMIC_RAY_HOME": str(settings.home_dir), "RAY_USAGE_STATS_ENABLED": "0"}
    cli = [sys.executable, "-m", "cosmic_ray.ops.cli"]

    def run(*args, stdin=None):
        return subprocess.run([*cli, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)

    added = run("users", "add", "grace", "--role", "astronomer", "--password-stdin", stdin="grace secret pass\n")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == {"username": "grace", "role": "astronomer", "added": True}
    assert "grace secret pass" not in added.stdout + added.stderr
    assert run("users", "add", "grace2", "--password", "x").returncode != 0  # no password option exists
    created = run("tokens", "create", "grace", "--name", "script")
    token = json.loads(created.stdout)
    me = httpx.get(f"{served}/auth/me", headers={"Authorization": f"Bearer {token['token']}"}, timeout=30)
    assert me.json() == {"username": "grace", "role": "astronomer"}
    assert run("tokens", "revoke", str(token["id"])).returncode == 0
    assert (
        httpx.get(f"{served}/auth/me", headers={"Authorization": f"Bearer {token['token']}"}, timeout=30).status_code
        == 401
    )
    assert run("users", "passwd", "grace", "--password-stdin", stdin="short\n").returncode != 0
    assert run("users", "passwd", "grace", "--password-stdin", stdin="a newer long password\n").returncode == 0
    assert event_store.accounts.authenticate("grace", "a newer long password") is not None
    assert run("users", "remove", "grace").returncode == 0
    assert event_store.accounts.get_user("grace") is None
