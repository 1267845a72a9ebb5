"""The running app fuzzed against its own OpenAPI schema (schemathesis): no 5xx anywhere, every
answer (errors included) matches the schema; oversized bodies get 413 at once.

Bounded: a few examples per operation, anonymous callers only (no state is changed: every write
route refuses them), ``/auth/login`` left out (its per-address rate limit is shared with the other
tests of the session; tests/integration/test_auth_api.py and tests/integration/test_security.py cover it).
"""

from __future__ import annotations

import time

import httpx
import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.timeout(300)
EXAMPLES_PER_OPERATION = 6
SENT = {"requests": 0, "5xx": 0}


def test_no_5xx_and_answers_match_the_schema(served):
    """Every operation of the schema (but login), a few generated requests each, anonymous."""
    import warnings

    schema = schemathesis.openapi.from_url(f"{served}/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/auth/login":
            continue
        operations += 1
        strategy = operation.as_strategy()
        for _ in range(EXAMPLES_PER_OPERATION):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                case = strategy.example()
            response = case.call(base_url=served, timeout=60)
            SENT["requests"] += 1
            SENT["5xx"] += response.status_code >= 500
            try:
                case.validate_response(response, checks=checks)
            except (Exception, BaseExceptionGroup):  # schemathesis raises a group of check failures
                failures.append(
                    f"{operation.method.upper()} {operation.path}: {response.status_code} {response.text[:200]} body={str(case.body)[:400]}"
                )
    assert operations >= 8
    assert failures == [], failures[:5]


def test_oversized_bodies_get_413_quickly(served, settings):
    limit = settings.max_body_bytes
    body = b'{"lightcurve": {"object_id": "big", "points": [' + b"0" * (limit + 1024) + b"]}}"
    with httpx.Client(base_url=served, timeout=30) as client:
        for route in ("/predict", "/predict/batch", "/classes"):
            start = time.perf_counter()
            declared = client.post(route, content=body, headers={"content-type": "application/json"})
            took = time.perf_counter() - start
            assert declared.status_code == 413, (route, declared.status_code, declared.text[:200])
            assert took < 2.0, f"{route}: 413 took {took:.2f} s"
            assert "exceeds the limit" in declared.json()["detail"]

        # a body just under the limit is read and judged on its content (422, not 413, not 5xx)
        under = b'{"lightcurve": {"object_id": "x", "points": []}, "pad": "' + b"a" * (limit // 2) + b'"}'
        assert client.post("/predict", content=under, headers={"content-type": "application/json"}).status_code == 422


def test_streamed_oversized_body_gets_413(served, settings):
    limit = settings.max_body_bytes
    body = b'{"lightcurve": {"object_id": "big", "points": [' + b"0" * (limit + 1024) + b"]}}"
    with httpx.Client(base_url=served, timeout=30) as client:

        def chunks():  # no Content-Length: the limit is enforced while streaming
            step = 1 << 20
            for start in range(0, len(body), step):
                yield body[start : start + step]

        start = time.perf_counter()
        streamed = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
        took = time.perf_counter() - start
        assert streamed.status_code == 413, streamed.text[:200]
        assert took < 2.0, f"streamed 413 took {took:.2f} s"
