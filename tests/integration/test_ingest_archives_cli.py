"""``cosmic-ray ingest mast|tess|irsa`` end to end: the real CLI, real HTTP, the real lake.

The network is replaced by a replay server on 127.0.0.1 that answers with the real recorded
service answers of the shared data (``mast-irsa-responses/``, ``irsa-ztf-lightcurves/``, the
real TESS light-curve FITS); the two MAST answers of a TIC search that were never recorded are
CONSTRUCTED fixtures (``tests/fixtures/constructed``). The CLI is pointed at it with ``--server``
(an option for mirrors), so the code under test sends real HTTP requests and the tests check
what it asked for as well as what reached the lake.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from cosmic_ray.ingest.lake import Lake

REPO = Path(__file__).resolve().parents[2]
CONSTRUCTED = REPO / "tests" / "fixtures" / "constructed"
TIC = 55652896
TESS_FILE = "hlsp_tess-data-alerts_tess_phot_00055652896-s01_tess_v1_lc.fits"

Answer = tuple[int, bytes]


@dataclass
class Replay:
    """What the replay server answers, and every request it was sent."""

    mashup: Callable[[dict[str, Any]], Answer] = lambda req: (404, b"no such service")
    downloads: dict[str, bytes] = field(default_factory=dict)
    lightcurves: Answer = (404, b"not found")
    seen: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def replay() -> Iterator[Replay]:
    state = Replay()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep the test output quiet
            pass

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            form = urllib.parse.parse_qs(body)
            request = json.loads(form["request"][0])
            state.seen.append({"method": "POST", "path": self.path, "request": request})
            if self.path != "/api/v0/invoke":
                return self._answer(404, b"unknown endpoint")
            self._answer(*state.mashup(request))

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            state.seen.append({"method": "GET", "path": url.path, "query": query})
            if url.path == "/api/v0.1/Download/file":
                data = state.downloads.get(query["uri"][0])
                return self._answer(200, data) if data is not None else self._answer(404, b"File not found")
            if url.path == "/cgi-bin/ZTF/nph_light_curves":
                return self._answer(*state.lightcurves)
            self._answer(404, b"unknown endpoint")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def run_cli(home: Path, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    """``cosmic-ray ARGS`` in a fresh process: (exit status, the JSON summary line, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COSMIC_RAY_HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "cosmic_ray.ops.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=REPO,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, json.loads(lines[-1]) if lines else None, proc.stderr


def reasons(home: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((home / "quarantine").glob("*.reason.json"))]


# ----------------------------------------------------------------------------------------- IRSA


def test_ingest_irsa_position_queries_irsa_and_keeps_its_rows(replay: Replay, tmp_path: Path, shared_data: Path):
    answer = shared_data / "irsa-ztf-lightcurves" / "1476.csv"  # real rows of the light-curve service
    replay.lightcurves = (200, answer.read_bytes())
    rows = list(csv.DictReader(answer.open()))
    ra, dec = float(rows[0]["ra"]), float(rows[0]["dec"])

    code, summary, err = run_cli(
        tmp_path, "ingest", "irsa", "--ra", str(ra), "--dec", str(dec), "--radius", "3", "--server", replay.url
    )
    assert code == 0, err
    [request] = replay.seen
    assert request["path"] == "/cgi-bin/ZTF/nph_light_curves"
    pos = request["query"]["POS"][0].split()
    assert pos[0] == "CIRCLE" and float(pos[1]) == pytest.approx(ra) and float(pos[2]) == pytest.approx(dec)
    assert float(pos[3]) == pytest.approx(3 / 3600, abs=1e-7)

    kept = [r for r in rows if r["catflags"] == "0" and r["mag"] and r["filtercode"] in ("zg", "zr", "zi")]
    assert summary is not None and summary["points"] == len(kept) == 167 and summary["quarantined"] == 0
    lake = Lake(tmp_path / "lake").read(sources=["ztf_irsa"])
    assert sorted(lake.column("object_id").to_pylist()) == sorted(r["oid"] for r in kept)
    assert sorted(lake.column("mjd").to_pylist()) == pytest.approx(sorted(float(r["mjd"]) for r in kept))
    assert summary["objects"] == len({r["oid"] for r in kept}) == 5


def test_ingest_irsa_error_answer_is_quarantined_with_the_reason(replay: Replay, tmp_path: Path):
    replay.lightcurves = (500, b"Internal Server Error: the light-curve service is down")
    code, summary, err = run_cli(tmp_path, "ingest", "irsa", "--ra", "150.1", "--dec", "2.2", "--server", replay.url)
    assert code == 0, err
    assert summary is not None and summary["points"] == 0 and summary["quarantined"] == 1
    [reason] = reasons(tmp_path)
    assert "IRSA answered HTTP 500" in reason["reason"] and "retry later" in reason["reason"]
    assert reason["input"].startswith(replay.url + "/cgi-bin/ZTF/nph_light_curves?POS=CIRCLE")


def test_ingest_irsa_needs_inputs_or_a_position(tmp_path: Path):
    code, summary, err = run_cli(tmp_path, "ingest", "irsa")
    assert code == 1 and summary is None and "--ra/--dec" in err
    code, _, err = run_cli(tmp_path, "ingest", "ztf", "--ra", "1", "--dec", "2", str(tmp_path))
    assert code == 1 and "ztf does not take --ra/--dec" in err


# ----------------------------------------------------------------------------------------- TESS


def _kept_cadences(path: Path) -> int:
    with fits.open(path) as hdul:
        d = hdul["LIGHTCURVE"].data
        keep = (d["QUALITY"] == 0) & np.isfinite(d["TIME"]) & np.isfinite(d["PDCSAP_FLUX"])
        return int(keep.sum())


def test_ingest_tess_by_tic_id_keeps_the_tic(replay: Replay, tmp_path: Path, shared_data: Path):
    search = json.loads((CONSTRUCTED / f"mast_caom_tess_tic{TIC}_CONSTRUCTED.json").read_text())
    products = json.loads((CONSTRUCTED / f"mast_products_tess_tic{TIC}_CONSTRUCTED.json").read_text())

    def mashup(request: dict[str, Any]) -> Answer:
        if request["service"] == "Mast.Caom.Filtered":
            return 200, json.dumps(search).encode()
        if request["service"] == "Mast.Caom.Products":
            return 200, json.dumps(products).encode()
        return 400, b"unexpected service"

    replay.mashup = mashup
    fits_path = shared_data / "tess" / TESS_FILE
    replay.downloads = {f"mast:TESS/product/{TESS_FILE}": fits_path.read_bytes()}  # the second LC answers 404

    code, summary, err = run_cli(tmp_path, "ingest", "tess", f"TIC {TIC}", "--server", replay.url)
    assert code == 0, err
    posts = [s["request"] for s in replay.seen if s["method"] == "POST"]
    assert [p["service"] for p in posts] == ["Mast.Caom.Filtered", "Mast.Caom.Products"]
    filters = {f["paramName"]: f["values"] for f in posts[0]["params"]["filters"]}
    assert filters["target_name"] == [str(TIC)] and filters["obs_collection"] == ["TESS"]
    assert posts[1]["params"] == {"obsid": "999000001"}
    downloads = [s["query"]["uri"][0] for s in replay.seen if s["method"] == "GET"]
    assert len(downloads) == 2 and all("_tp.fits" not in uri for uri in downloads)  # TP product skipped

    assert summary is not None and summary["inputs"] == 2 and summary["quarantined"] == 1
    assert summary["points"] == _kept_cadences(fits_path) > 0
    table = Lake(tmp_path / "lake").read(sources=["tess"])
    assert set(table.column("object_id").to_pylist()) == {f"TIC{TIC}"}
    [reason] = reasons(tmp_path)
    assert "HTTP 404" in reason["reason"] and "-s99_" in reason["input"]


# ----------------------------------------------------------------------------------------- MAST


def test_ingest_mast_cone_search_stores_anchors_not_points(replay: Replay, tmp_path: Path, shared_data: Path):
    recorded = shared_data / "mast-irsa-responses" / "mast" / "caom.json"
    answers = iter([(200, b'{"status": "EXECUTING", "msg": "", "data": []}'), (200, recorded.read_bytes())])
    replay.mashup = lambda request: next(answers, (200, recorded.read_bytes()))

    args = ("ingest", "mast", "--ra", "23.1", "--dec", "60.6", "--radius", "36", "--server", replay.url)
    code, summary, err = run_cli(tmp_path, *args)
    assert code == 0, err
    posts = [s["request"] for s in replay.seen]
    assert len(posts) == 2  # asked again after EXECUTING
    assert posts[0]["service"] == "Mast.Caom.Cone"
    assert posts[0]["params"] == {"ra": 23.1, "dec": 60.6, "radius": pytest.approx(0.01)}
    expected = [row["obs_id"] for row in json.loads(recorded.read_text())["data"]]
    assert summary is not None and summary["anchors"] == len(expected) == 19 and summary["points"] == 0
    lake = Lake(tmp_path / "lake")
    assert lake.read_anchors().column("obs_id").to_pylist() == expected
    assert lake.read().num_rows == 0 and lake.files() == []  # never among the light-curve points

    code, again, err = run_cli(tmp_path, *args)  # a rerun adds nothing
    assert code == 0, err
    assert again is not None and again["anchors"] == 0 and again["duplicates"] == 19
    assert lake.read_anchors().num_rows == 19


def test_ingest_mast_recorded_answers_from_the_cli(ray_session, tmp_path: Path, shared_data: Path, monkeypatch):
    """``cosmic-ray ingest mast <recorded answers>`` (answered "not file based" before): read with Ray Data."""
    from typer.testing import CliRunner

    from cosmic_ray.ops.cli import app

    recorded = shared_data / "mast-irsa-responses" / "mast" / "caom.json"
    http500 = CONSTRUCTED / "mast_caom_http500_CONSTRUCTED.http"
    monkeypatch.setenv("COSMIC_RAY_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["ingest", "mast", str(recorded), str(http500)])
    assert result.exit_code == 0, result.output
    summary = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    assert summary["inputs"] == 2 and summary["anchors"] == 19 and summary["quarantined"] == 1
    anchors = Lake(tmp_path / "lake").read_anchors()
    assert anchors.column("obs_id").to_pylist() == [r["obs_id"] for r in json.loads(recorded.read_text())["data"]]
    [reason] = reasons(tmp_path)
    assert reason["input"] == str(http500) and "MAST answered HTTP 500" in reason["reason"]
