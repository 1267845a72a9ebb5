"""Security checks on the running app and the repository.

- every write route (found from the app itself, so a new one cannot slip through) refuses
  anonymous callers (401) and viewers (403), with a body the schema accepts;
- session cookies are HttpOnly + SameSite; passwords are never logged or returned;
- names from users never pick a path (web static routes, quarantine names, lake partitions);
- no secret in the tracked files; CORS closed by default.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(300)
# POST routes anyone may call: classification is a read, login/logout are how one gets in.
PUBLIC_WRITES = {("POST", "/predict"), ("POST", "/predict/batch"), ("POST", "/auth/login"), ("POST", "/auth/logout")}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _write_routes_of_the_app() -> set[tuple[str, str]]:
    """Every non-GET route of the FastAPI app, in the schema or not (routers included without a prefix)."""
    from fastapi.routing import APIRoute

    from cosmic_ray.serve.app import api

    def routes(found):
        for r in found:
            inner = getattr(r, "original_router", None)  # FastAPI 0.165 keeps an included router as one route
            if inner is not None:
                yield from routes(inner.routes)
            elif isinstance(r, APIRoute):
                yield r

    found = {(m, r.path) for r in routes(api.routes) for m in r.methods if m in WRITE_METHODS}
    assert {("POST", "/classes"), ("POST", "/predict")} <= found, "the routes of the included routers were not found"
    return found


def test_every_write_route_refuses_anonymous_and_viewers(served, accounts):
    import schemathesis

    openapi = httpx.get(f"{served}/openapi.json", timeout=30).json()
    in_schema = {(m.upper(), p) for p, ops in openapi["paths"].items() for m in ops if m.upper() in WRITE_METHODS}
    assert _write_routes_of_the_app() <= in_schema, (
        "a write route is hidden from the schema: it must be checked here too"
    )
    protected = sorted(in_schema - PUBLIC_WRITES)
    assert {("POST", "/classes"), ("DELETE", "/classes/{name}"), ("POST", "/model/reload")} <= set(protected)

    schema = schemathesis.openapi.from_url(f"{served}/openapi.json")
    checked = {}
    for method, path in protected:
        operation = schema[path][method]
        strategy = operation.as_strategy()
        statuses = Counter()
        for _ in range(8):  # schema-valid bodies; some fail a validator the schema can't express (422)
            case = strategy.example()
            anonymous = case.call(base_url=served, timeout=60)
            viewer = case.call(base_url=served, headers={"Authorization": f"Bearer {accounts['viewer']}"}, timeout=60)
            forged = case.call(base_url=served, headers={"Authorization": "Bearer crt_" + "x" * 43}, timeout=60)
            statuses[(anonymous.status_code, viewer.status_code, forged.status_code)] += 1
            assert anonymous.status_code in (401, 422), (method, path, anonymous.status_code, anonymous.text[:200])
            assert viewer.status_code in (403, 422), (method, path, viewer.status_code, viewer.text[:200])
            assert forged.status_code in (401, 422), (method, path, forged.status_code)
            if anonymous.status_code == 401:
                challenge = anonymous.headers.get("www-authenticate")
                assert challenge in ("Bearer", ["Bearer"]), challenge
        assert statuses[(401, 403, 401)] >= 1, (
            f"{method} {path}: never reached the auth check with a valid body: {statuses}"
        )
        checked[f"{method} {path}"] = dict(statuses)
    print(f"write routes checked: {checked}")


def test_session_cookie_attributes(served, event_store):
    from cosmic_ray.serve import auth

    event_store.accounts.add_user("cookie-check", "cookie check password 7", role="viewer")
    with httpx.Client(base_url=served, timeout=60) as client:
        answer = client.post("/auth/login", json={"username": "cookie-check", "password": "cookie check password 7"})
        assert answer.status_code == 200, answer.text
        cookies = answer.headers.get_list("set-cookie")
        assert len(cookies) == 1
        attributes = [a.strip().lower() for a in cookies[0].split(";")]
        assert "httponly" in attributes and any(a in ("samesite=strict", "samesite=lax") for a in attributes)
        logout = client.post("/auth/logout")
        cleared = logout.headers["set-cookie"].lower()
        assert "max-age=0" in cleared and "httponly" in cleared and "samesite=" in cleared
    secure = auth.session_cookie("abc", __import__("datetime").datetime(2100, 1, 1), secure=True)
    assert "Secure" in secure.split("; ")


def _ray_log_files() -> list[Path]:
    import ray

    node = ray._private.worker._global_node
    logs = Path(node.get_logs_dir_path())
    return [p for p in logs.rglob("*") if p.is_file()]


def test_passwords_are_never_logged_or_returned(served, event_store, settings, tmp_path):
    secret_ok = f"right-{uuid.uuid4().hex}"
    secret_bad = f"wrong-{uuid.uuid4().hex}"
    secret_long = f"long-{uuid.uuid4().hex}" * 80  # over the 1024 limit: a 422 must not echo it
    env = {
        **os.environ,
        "COSMIC_RAY_HOME": str(settings.home_dir),
        "RAY_USAGE_STATS_ENABLED": "0",
        "COSMIC_RAY_LOG_LEVEL": "DEBUG",
    }
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "cosmic_ray.ops.cli",
            "users",
            "add",
            "pw-check",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        input=secret_ok + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    answers = [
        httpx.post(f"{served}/auth/login", json={"username": "pw-check", "password": secret_bad}, timeout=60),
        httpx.post(f"{served}/auth/login", json={"username": "pw-check", "password": secret_ok}, timeout=60),
        httpx.post(f"{served}/auth/login", json={"username": "pw-check", "password": secret_long}, timeout=60),
    ]
    assert [a.status_code for a in answers] == [401, 200, 422]
    returned = cli.stdout + cli.stderr + "".join(a.text + str(a.headers) for a in answers)
    for secret in (secret_ok, secret_bad, secret_long[:60]):
        assert secret not in returned
    # every log file of this Ray session (the app's replicas, the proxy, the controller) and the home folder
    leaked = []
    for path in _ray_log_files() + [
        p for p in Path(settings.home_dir).rglob("*") if p.is_file() and p.stat().st_size < 50_000_000
    ]:
        data = path.read_bytes()
        if any(s.encode() in data for s in (secret_ok, secret_bad, secret_long[:60])):
            leaked.append(str(path))
    assert leaked == [], f"a password appears in {leaked}"
    stored = event_store.accounts.get_user("pw-check")
    assert stored is not None and secret_ok not in json.dumps(
        stored.__dict__ if hasattr(stored, "__dict__") else str(stored), default=str
    )


# ------------------------------------------------------------------ paths from users
TRAVERSALS = [
    "/static/js/../../pyproject.toml",
    "/static/js/%2e%2e/%2e%2e/pyproject.toml",
    "/static/js/..%2f..%2fpyproject.toml",
    "/static/js/%2e%2e%2f%2e%2e%2fpyproject.toml",
    "/static/css/....//....//pyproject.toml",
    "/vendor/three/../../../pyproject.toml",
    "/vendor/three/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
    "/vendor/three/..%5c..%5c..%5cpyproject.toml",
    "/static/js/%252e%252e/%252e%252e/pyproject.toml",
    "/static/js//etc/passwd",
    "/static/js/%2fetc%2fpasswd",
]


def test_web_static_routes_do_not_leave_their_folders(served):
    secret_marker = (REPO / "pyproject.toml").read_text()[:40]
    with httpx.Client(base_url=served, timeout=30) as client:
        for raw in TRAVERSALS:
            # send the path exactly as written (no client-side normalisation of ../)
            request = httpx.Request("GET", httpx.URL(served).copy_with(raw_path=raw.encode()))
            answer = client.send(request)
            assert answer.status_code in (400, 404, 405), (raw, answer.status_code)
            assert secret_marker not in answer.text and "root:x:0:0" not in answer.text, raw


@hsettings(max_examples=200, deadline=None, database=None)
@given(
    name=st.text(max_size=120)
    | st.sampled_from(["..", "../../etc/passwd", "..\\..\\x", "/abs/path", ".hidden", "a/../../b", "\x00", "C:\\x"])
)
def test_quarantine_names_stay_in_the_folder(name, tmp_path_factory):
    from cosmic_ray.ingest.quarantine import quarantine, safe_name

    safe = safe_name(name)
    assert safe and "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert safe not in (".", "..") and not safe.startswith(".")
    folder = tmp_path_factory.getbasetemp() / "quarantine-check"
    written = quarantine(folder, name, "test", data=b"x")
    assert written.resolve().parent == folder.resolve()
    assert json.loads(written.read_text())["input"] == name  # the real name is kept, inside the file


@hsettings(max_examples=60, deadline=None, database=None)
@given(
    source=st.text(min_size=1, max_size=30)
    | st.sampled_from(["..", "../x", "a/b", "..\\x", ".", "/tmp/x", "x/../../y"])
)
def test_lake_partitions_stay_in_the_lake(source, tmp_path_factory):
    from cosmic_ray.core.errors import CosmicRayError
    from cosmic_ray.core.lightcurve import points_to_table
    from cosmic_ray.ingest.lake import Lake

    base = tmp_path_factory.mktemp("lake-check")
    root = base / "deep" / "lake"
    table = points_to_table("obj", [{"mjd": 59000.5, "band": "g", "mag": 19.0, "magerr": 0.1}], source=source)
    try:
        Lake(root).append(table)
    except CosmicRayError:
        pass
    outside = [p for p in base.rglob("*") if p.is_file() and root.resolve() not in p.resolve().parents]
    assert outside == []


# ------------------------------------------------------------------ secrets in the repository
def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())


SECRET_PATTERNS = {
    "aws access key": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY-----"),
    "cosmic_ray api token": re.compile(r"\bcrt_[A-Za-z0-9_-]{32,}"),
    "password in a url": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:([^/\s@'\"]{6,})@"),
    "github/slack token": re.compile(r"\b(ghp_[A-Za-z0-9]{36}|xox[abp]-[A-Za-z0-9-]{20,})"),
}
ASSIGNMENT = re.compile(
    r"""(?i)\b[\w.-]*(secret|password|passwd|token|api_key|apikey)[\w.-]*["']?\s*[:=]\s*["']([^"'\s]{16,})["']"""
)
PLACEHOLDER = re.compile(r"(?i)(example|changeme|dummy|placeholder|your[_-]|xxxx|<|\$\{|\$\(|\{\{|not-a-token)")


def find_secrets(text: str) -> list[str]:
    found = [
        name
        for name, pattern in SECRET_PATTERNS.items()
        for m in pattern.finditer(text)
        if not PLACEHOLDER.search(m.group(0))
    ]
    for m in ASSIGNMENT.finditer(text):
        value = m.group(2)
        if not PLACEHOLDER.search(value) and _entropy(value) > 3.5:
            found.append(f"high-entropy {m.group(1)} assignment")
    return found


def test_the_secret_detector_detects():
    """Built at run time so the repository never holds the samples."""
    k = "AKIA" + "Q" * 4 + "7" * 12
    samples = [
        f"aws = '{k}'",
        "-----BEGIN " + "RSA PRIVATE KEY-----",
        "token: crt_" + "aZ3" * 14,
        "url = 'postgresql://admin:" + "s3cr3tPa55" + "@db.internal/x'",
        "API_TOKEN = '" + "q8Zr2LxV0pN4tK7wB1mY" + "'",
    ]
    for sample in samples:
        assert find_secrets(sample), sample
    for harmless in (
        "password = 'astronomer password 1'",
        "token = 'crt_not-a-token'",
        "url = 'https://example.com/x'",
    ):
        assert not find_secrets(harmless), harmless


def test_no_secret_in_tracked_files():
    files = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    )
    hits = []
    scanned = 0
    for name in filter(None, files):
        path = REPO / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue  # binary
        scanned += 1
        for what in find_secrets(data.decode("utf-8", "replace")):
            hits.append(f"{name}: {what}")
    assert scanned > 50
    assert hits == []


# ------------------------------------------------------------------ CORS
def test_cors_is_closed_by_default(served):
    origin = "https://evil.example"
    preflight = httpx.options(
        f"{served}/predict",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
        timeout=30,
    )
    assert "access-control-allow-origin" not in preflight.headers, dict(preflight.headers)
    assert "access-control-allow-credentials" not in preflight.headers
    simple = httpx.get(f"{served}/healthz", headers={"Origin": origin}, timeout=30)
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers


def test_client_address_believes_forwarded_for_only_from_trusted_proxies():
    from starlette.requests import Request

    from cosmic_ray.serve.auth import client_address

    def request(peer: str, forwarded: str | None = None) -> Request:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return Request(
            {"type": "http", "client": (peer, 5555), "headers": headers, "method": "POST", "path": "/auth/login"}
        )

    assert client_address(request("203.0.113.9", "10.0.0.1")) == "203.0.113.9"  # nobody trusted: the header is ignored
    trusted = ["10.1.0.5"]
    assert (
        client_address(request("203.0.113.9", "198.51.100.7"), trusted) == "203.0.113.9"
    )  # an untrusted peer can't pick its address
    assert client_address(request("10.1.0.5", "198.51.100.7"), trusted) == "198.51.100.7"
    # a client-sent header is prepended to, never trusted: the right-most untrusted hop wins
    assert client_address(request("10.1.0.5", "1.2.3.4, 198.51.100.7"), trusted) == "198.51.100.7"
    assert client_address(request("10.1.0.5"), trusted) == "10.1.0.5"
