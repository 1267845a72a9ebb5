"""The client's retries and errors against a real loopback HTTP server (no mocks): 503/429 with
``Retry-After`` (seconds or an HTTP date) then 200; bounded retries; 4xx with the server's message;
the CSV light-curve download read into rows, pandas and astropy."""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cosmic_ray.client import AuthError, BusyError, Client, NotFoundError, ValidationError
from cosmic_ray.client.transport import retry_after_seconds

pytestmark = pytest.mark.timeout(60)

#: The light-curve CSV download's header and two rows, as the server's ``format=csv`` writes them.
CSV = (
    "object_id,mjd,time_scale,band,kind,mag,magerr,mag_system,flux,flux_err,flux_unit,source,candid,label\n"
    "ZTF21abiuvdk,59396.3,utc,g,detection,18.9,0.08,AB,102155.4,7500.1,nJy,ztf_alert,1631194010015015002,\n"
    "ZTF21abiuvdk,59397.2,utc,r,upper_limit,20.1,,AB,,,nJy,ztf_alert,,\n"
)


class _Script(BaseHTTPRequestHandler):
    """Answers each path from a list of (status, headers, body), one per request, the last repeated."""

    script: dict[str, list[tuple[int, dict[str, str], bytes]]] = {}
    seen: list[tuple[str, str, float, str | None]] = []

    def _answer(self) -> None:
        path = self.path.split("?", 1)[0]
        self.seen.append((self.command, self.path, time.monotonic(), self.headers.get("authorization")))
        steps = self.script[path]
        status, headers, body = steps.pop(0) if len(steps) > 1 else steps[0]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def _json(status: int, body: object, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(body).encode()


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Script]]]:
    _Script.script, _Script.seen = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Script)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Script
    httpd.shutdown()
    httpd.server_close()


def test_a_503_with_retry_after_is_sent_again_after_the_wait(server):
    url, handler = server
    handler.script["/alerts"] = [_json(503, {"detail": "busy"}, **{"Retry-After": "1"}), _json(200, [])]
    with Client(url, token="t0ken-for-tests") as api:
        assert api.alerts() == []
    (m1, _, t1, auth), (_, _, t2, _) = handler.seen
    assert m1 == "GET" and auth == "Bearer t0ken-for-tests"
    assert 0.9 <= t2 - t1 < 5, t2 - t1  # waited the server's second


def test_a_429_with_an_http_date_is_honoured_and_retries_are_bounded(server):
    url, handler = server
    soon = email.utils.format_datetime(email.utils.localtime().astimezone(), usegmt=False)
    handler.script["/candidates"] = [_json(429, {"detail": "slow down"}, **{"Retry-After": soon}), _json(200, [])]
    with Client(url) as api:
        assert api.candidates("SLSN-I") == []
    assert len(handler.seen) == 2
    handler.seen.clear()
    handler.script["/alerts"] = [_json(503, {"detail": "alerts: 8 requests in flight"}, **{"Retry-After": "0"})]
    with Client(url, retries=2) as api, pytest.raises(BusyError) as busy:
        api.alerts()
    assert len(handler.seen) == 3 and busy.value.status == 503 and "in flight" in str(busy.value)
    handler.seen.clear()
    handler.script["/model"] = [_json(503, {"detail": "down"}, **{"Retry-After": "3600"}), _json(200, {"version": "2"})]
    start = time.monotonic()
    with Client(url, max_wait=0.2) as api:  # a long Retry-After is cut to max_wait
        assert api.model() == {"version": "2"}
    assert time.monotonic() - start < 3


def test_refusals_carry_the_servers_message(server):
    url, handler = server
    handler.script["/objects/ZTF%2Fodd/labels"] = [_json(403, {"detail": "role 'viewer' may not change this"})]
    handler.script["/objects/x/labels"] = [
        _json(422, {"detail": [{"loc": ["body", "class"], "msg": "unknown class 'Kilonova-ish'"}]})
    ]
    handler.script["/objects/nope/lightcurve"] = [_json(404, {"detail": "object 'nope' is not in the lake"})]
    with Client(url) as api:
        with pytest.raises(AuthError, match="viewer"):
            api.add_label("ZTF/odd", "bogus")  # the id is quoted into one path segment
        with pytest.raises(ValidationError, match="class: unknown class 'Kilonova-ish'"):
            api.add_label("x", "class", class_="Kilonova-ish")
        with pytest.raises(NotFoundError, match="not in the lake"):
            api.lightcurve("nope")
    assert [s[0] for s in handler.seen] == ["POST", "POST", "GET"]  # 4xx is never retried


def test_the_csv_download_becomes_rows_pandas_and_astropy(server):
    url, handler = server
    handler.script["/objects/ZTF21abiuvdk/lightcurve"] = [
        (200, {"Content-Type": "text/csv; charset=utf-8"}, CSV.encode())
    ]
    with Client(url) as api:
        rows = api.lightcurve("ZTF21abiuvdk", as_="rows")
        frame = api.lightcurve("ZTF21abiuvdk", as_="pandas")
        table = api.lightcurve("ZTF21abiuvdk")
    assert rows[0]["mjd"] == 59396.3 and rows[0]["candid"] == 1631194010015015002 and rows[1]["magerr"] is None
    assert rows[1]["kind"] == "upper_limit" and rows[0]["label"] is None
    assert list(frame["band"]) == ["g", "r"] and frame["mag"].tolist() == [18.9, 20.1]
    assert len(table) == 2 and str(table["mjd"].unit) == "d" and str(table["mag"].unit) == "mag"
    assert "format=csv" in handler.seen[0][1]


def test_retry_after_parsing():
    assert retry_after_seconds("2.5") == 2.5 and retry_after_seconds("-3") == 0.0
    assert retry_after_seconds("not a date") is None and retry_after_seconds("") is None
    past = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert retry_after_seconds(past) == 0.0
