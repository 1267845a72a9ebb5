"""The API's request metrics over real HTTP (uvicorn on loopback, the real middleware and /metrics route,
a real SQLite event store): invented HTTP methods add no metric series, and ``/metrics`` is a read
that honours ``COSMIC_RAY_READ_REQUIRES_AUTH``.

The model replica (a Ray deployment) is not started: ``/metrics`` only asks it for its version, which a
small stand-in answers.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from cosmic_ray.core.config import Settings
from cosmic_ray.serve import context, metrics
from cosmic_ray.serve.middleware import ObserveAndLimit
from cosmic_ray.serve.routes.health import router as health_router
from cosmic_ray.serve.store import Store

try:
    from web_server import serve_app
except ImportError:  # tests/ made a package
    from tests.web_server import serve_app

try:
    from api_context import model_free_context
except ImportError:  # tests/ made a package
    from tests.api_context import model_free_context


class _Remote:
    def __init__(self, value: dict[str, Any]):
        self.value = value

    async def remote(self) -> dict[str, Any]:
        return self.value


class _ModelVersion:
    """Answers ``await model.info.remote()`` as the model replica does (only the version is read)."""

    info = _Remote({"version": "7"})


@pytest.fixture(params=[False, True], ids=["reads-open", "reads-need-login"])
def api(request, tmp_path, monkeypatch):
    """``(base_url, store, read_requires_auth)`` of an app with the API's middleware and /metrics route."""
    settings = Settings(home=tmp_path, read_requires_auth=request.param)
    store = Store.open(settings.event_store_url)
    store.accounts.add_user("vic", "viewer password 1", role="viewer")
    ctx = model_free_context(settings, store, model=_ModelVersion())
    monkeypatch.setattr(context, "_CONTEXT", {})
    context.configure(ctx)
    app = FastAPI()
    app.add_middleware(ObserveAndLimit)
    app.include_router(health_router)
    with serve_app(app) as url:
        yield url, store, request.param
    store.close()


def _request_series(text: str) -> set[tuple[str, str, str]]:
    """(route, method, status) of every ``cosmic_ray_http_requests`` series in a scrape."""
    out = set()
    for family in text_string_to_metric_families(text):
        if family.name == "cosmic_ray_http_requests":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out.add((sample.labels["route"], sample.labels["method"], sample.labels["status"]))
    return out


#: Methods the HTTP parser of Serve's uvicorn (httptools/llhttp) passes on to the app; with h11, any token
#: passes (`curl -X M$RANDOM`). Today each would be a new series.
UNUSUAL_METHODS = ("PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH", "REPORT", "PURGE")


def test_unusual_http_methods_add_no_metric_series(api):
    url, store, _ = api
    token = store.accounts.create_token("vic").token
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=30) as client:
        client.request("MKCALENDAR", "/healthz")  # every label value that can exist is there once these ran
        client.request("MKCALENDAR", "/no/such/route")
        client.get("/no/such/route")
        client.get("/metrics", headers=auth)
        before = _request_series(client.get("/metrics", headers=auth).text)
        for method in UNUSUAL_METHODS:
            assert client.request(method, "/healthz").status_code == 405
            assert client.request(method, "/no/such/route").status_code == 404
        after = _request_series(client.get("/metrics", headers=auth).text)
    assert after == before  # no new series
    assert {method for _, method, _ in after} <= metrics.KNOWN_METHODS | {metrics.OTHER_METHOD}
    assert ("/healthz", metrics.OTHER_METHOD, "405") in after


def test_the_method_label_is_one_of_a_fixed_set():
    assert metrics.method_label("GET") == "GET"
    assert metrics.method_label(f"M{secrets.randbelow(10**6)}") == metrics.OTHER_METHOD
    assert metrics.method_label("get") == metrics.OTHER_METHOD  # methods are case-sensitive tokens
    assert metrics.status_label(404) == "404" and metrics.status_label(7) == "other"


def test_metrics_honours_the_read_access_setting(api):
    url, store, reads_need_login = api
    token = store.accounts.create_token("vic").token
    with httpx.Client(base_url=url, timeout=30) as client:
        anonymous = client.get("/metrics")
        forged = client.get("/metrics", headers={"Authorization": "Bearer crt_" + "x" * 43})
        signed_in = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert anonymous.status_code == (401 if reads_need_login else 200)
    assert forged.status_code == (401 if reads_need_login else 200)
    assert signed_in.status_code == 200
    assert "cosmic_ray_model_version 7.0" in signed_in.text
    if reads_need_login:
        assert "cosmic_ray_http_requests" not in anonymous.text
