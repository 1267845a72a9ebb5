"""Issue 18, items 8 and 9, over real HTTP: the served FastAPI app (``cosmic_ray.serve.app.api``) on
uvicorn, a real SQLite event store, no Ray (the model is never reached: each request here is
refused, or answered from the store, before it).

- Item 8: every answer carries the Content-Security-Policy (the pages' inline import maps by the
  hash of the served files), ``nosniff`` and a Referrer-Policy; ``/docs`` is Swagger UI from the
  installed package, with no script or style from another origin; ``/redoc`` (a CDN page) is gone.
- Item 9: values that reached a JSON path (``class``), a time conversion (``since``) or the model
  (an alert magnitude of 300 digits) answer 422 with a message, with reads open (the default) or not.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path

import fastavro
import httpx
import pytest

from cosmic_ray.core.config import Settings
from cosmic_ray.serve import context, web
from cosmic_ray.serve.app import api
from cosmic_ray.serve.docs import SWAGGER_UI_DIR
from cosmic_ray.serve.store import Store

try:
    from web_server import serve_app
except ImportError:  # tests/ made a package
    from tests.web_server import serve_app

try:
    from api_context import configured
except ImportError:  # tests/ made a package
    from tests.api_context import configured

PASSWORD = "hardening test passphrase 4711"


@pytest.fixture(scope="module")
def served_api(tmp_path_factory):
    """``(base_url, store)``: the app with its ingress context over a fresh store; one classification stored."""
    home = tmp_path_factory.mktemp("hardening")
    settings = Settings(home=home)
    store = Store.open(settings.event_store_url)
    for role in ("viewer", "astronomer"):
        store.accounts.add_user(role, PASSWORD, role=role)
    store.events.record_classifications(
        [
            {
                "candid": 1,
                "object_id": "ZTF21abiuvdk",
                "class": "SN Ia",
                "probabilities": {"SN Ia": 0.9, "SLSN-I": 0.1},
                "open_set_score": 0.1,
                "novel": False,
                "rare": False,
                "model_version": "1",
            }
        ]
    )
    with configured(settings, store, logins=50, pages=True), serve_app(api) as url:
        yield url, store
    store.close()


# ------------------------------------------------------------------ item 8: headers, /docs
def _policy(response: httpx.Response) -> dict[str, list[str]]:
    header = response.headers.get("content-security-policy")
    assert header, f"{response.request.url}: no Content-Security-Policy"
    out = {}
    for part in header.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def _import_map_hash(html: Path) -> str:
    text = html.read_text(encoding="utf-8")
    (inline,) = re.findall(r'<script type="importmap">(.*?)</script>', text, flags=re.S)
    return "'sha256-" + base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode() + "'"


def test_every_answer_carries_the_security_headers(served_api):
    url, store = served_api
    session, _ = store.accounts.create_session("viewer", timedelta(hours=1))
    with httpx.Client(base_url=url, timeout=30) as client:
        answers = {
            "page": client.get("/", cookies={"cr_session": session}),
            "login page": client.get("/login"),
            "redirect": client.get("/solar"),
            "asset": client.get("/static/js/dashboard.js"),
            "api": client.get("/alerts"),
            "422": client.get("/alerts?limit=0"),
            "404": client.get("/no/such/route"),
            "401": client.get("/web/config"),
            "schema": client.get("/openapi.json"),
            "docs": client.get("/docs"),
        }
    assert answers["page"].status_code == 200 and answers["redirect"].status_code == 303
    for what, answer in answers.items():
        assert answer.headers.get("x-content-type-options") == "nosniff", what
        assert answer.headers.get("referrer-policy") == "no-referrer", what
        policy = _policy(answer)
        assert policy["default-src"] == ["'self'"], what
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"], what
        assert policy["style-src"] == ["'self'"], what
        assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"], what
        assert policy["img-src"] == ["'self'", "data:", *sorted(web.APOD_IMAGE_ORIGINS)], what


def test_the_policy_allows_each_pages_import_map_by_the_hash_of_the_served_file(served_api):
    url, store = served_api
    session, _ = store.accounts.create_session("viewer", timedelta(hours=1))
    script_src = _policy(httpx.get(f"{url}/login", timeout=30))["script-src"]
    pages = web.page_files()
    assert {p.name for p in pages} >= {"index.html", "login.html", "solar.html"}
    for html in pages:
        assert _import_map_hash(html) in script_src, html.name
    assert len(script_src) == 1 + len({_import_map_hash(p) for p in pages})  # 'self' and those hashes only
    # the file served is the file hashed
    served = httpx.get(f"{url}/solar", cookies={"cr_session": session}, timeout=30).text
    assert served == (web.default_web_dir() / "solar.html").read_text(encoding="utf-8")


def test_docs_is_swagger_ui_from_the_installed_package(served_api):
    url, _ = served_api
    with httpx.Client(base_url=url, timeout=30) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(not re.match(r"[a-z]+://|//", s) for s in sources), sources  # no other origin
        assert "<script>" not in page.text  # no inline script: the CSP needs no hash for it
        for src in sources:
            if src.startswith("data:"):
                continue
            asset = client.get("/" + src)
            assert asset.status_code == 200, src
            assert asset.headers.get("x-content-type-options") == "nosniff"
            if src.endswith("swagger-ui-bundle.js"):
                assert asset.content == (SWAGGER_UI_DIR / "swagger-ui-bundle.js").read_bytes()
        assert "openapi.json" in client.get("/docs/init.js").text
        assert client.get("/redoc").status_code == 404  # ReDoc loaded its script from a CDN
        assert client.get("/openapi.json").status_code == 200


# ------------------------------------------------------------------ item 9: 422, not 500
def _real_alert(shared_data: Path) -> dict:
    path = sorted((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))[1]
    with path.open("rb") as f:
        record = next(iter(fastavro.reader(f)))
    assert isinstance(record, dict)
    return {k: v for k, v in record.items() if not k.startswith("cutout")}


def _alert_body(alert: dict, where: str, digits: str) -> bytes:
    """The alert as a /predict body with ``magpsf`` of the candidate or first previous detection set to ``digits``."""
    alert = json.loads(json.dumps(alert, default=str))
    target = alert["candidate"] if where == "candidate" else next(p for p in alert["prv_candidates"] if p["candid"])
    target["magpsf"] = "__MAG__"
    return json.dumps({"alert": alert}).replace('"__MAG__"', digits).encode()


@pytest.fixture(params=[False, True], ids=["reads-open", "reads-need-login"])
def caller(request, served_api, monkeypatch):
    """``(base_url, headers, store)`` of an anonymous caller (reads open) or a viewer (reads need a login)."""
    url, store = served_api
    ctx = context.current()
    settings = ctx.settings.model_copy(update={"read_requires_auth": request.param})
    monkeypatch.setattr(context, "_CONTEXT", {"ingress": dataclasses.replace(ctx, settings=settings)})
    headers = {"Authorization": f"Bearer {store.accounts.create_token('viewer').token}"} if request.param else {}
    return url, headers, store


@pytest.mark.parametrize("value", ['x"', 'SN Ia"', "x\\", '"', "é"])
def test_a_class_that_would_break_the_json_path_is_a_422(caller, value):
    url, headers, _ = caller
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for route in ("/candidates", "/alerts"):
            answer = client.get(route, params={"class": value})
            assert answer.status_code == 422, (route, answer.status_code, answer.text[:200])
            assert answer.json()["detail"][0]["loc"] == ["query", "class"]
        ranked = client.get("/candidates", params={"class": "SN Ia"})
        assert ranked.status_code == 200 and [a["object_id"] for a in ranked.json()] == ["ZTF21abiuvdk"]
        assert client.get("/candidates", params={"class": "SN Ibn/Icn"}).json() == []


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"])
def test_a_time_out_of_range_in_utc_is_a_422(caller, since):
    url, headers, _ = caller
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for route, params in (("/alerts", {}), ("/candidates", {"class": "SN Ia"})):
            answer = client.get(route, params={**params, "since": since})
            assert answer.status_code == 422, (route, answer.status_code, answer.text[:200])
            assert answer.json()["detail"][0]["loc"] == ["query", "since"]
            assert "out of range" in answer.json()["detail"][0]["msg"]
        fine = client.get("/alerts", params={"since": "2000-01-01T00:00:00+14:00"})
        assert fine.status_code == 200 and len(fine.json()) == 1


def test_a_class_name_that_could_not_be_ranked_cannot_be_registered(served_api):
    url, store = served_api
    token = store.accounts.create_token("astronomer").token
    answer = httpx.post(
        f"{url}/classes",
        json={"name": 'x"', "object_ids": ["ZTF21abiuvdk"]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 422, answer.text[:200]
    assert answer.json()["detail"][0]["loc"] == ["body", "name"]


@pytest.mark.parametrize(
    ("where", "digits", "expected"),
    [
        ("candidate", "9" * 400, "no usable photometry"),  # not a float at all
        ("candidate", "1" + "0" * 300, "outside -40..60"),  # a finite float of 301 digits
        ("candidate", "-" + "9" * 300, "no usable photometry"),  # its flux overflows: the parser refuses the row
        ("previous", "1" + "0" * 300, "outside -40..60"),
    ],
)
def test_an_alert_with_an_absurd_magnitude_is_a_422_with_a_message(caller, shared_data, where, digits, expected):
    url, headers, _ = caller
    body = _alert_body(_real_alert(shared_data), where, digits)
    answer = httpx.post(
        f"{url}/predict", content=body, headers={**headers, "Content-Type": "application/json"}, timeout=30
    )
    assert answer.status_code == 422, (answer.status_code, answer.text[:300])
    assert expected in answer.json()["detail"]
    batch = httpx.post(
        f"{url}/predict/batch",
        content=b'{"items": [' + body + b"]}",
        headers={**headers, "Content-Type": "application/json"},
        timeout=30,
    )
    assert batch.status_code == 422 and expected in batch.json()["detail"]
