"""The shape every source shares (``cosmic_ray.sources.base``) and the one registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cosmic_ray.core.errors import SourceError
from cosmic_ray.ingest.batch import request_files
from cosmic_ray.ingest.requests import IngestOptions, request_for
from cosmic_ray.sources import REGISTRY, get_source
from cosmic_ray.sources.base import FileRequest, RawInput, Request, recorded_paths, unwrap_http

REPO = Path(__file__).resolve().parents[3]


def test_importing_the_registry_imports_no_source_and_nothing_heavy():
    code = (
        "import sys, json; import cosmic_ray.sources as s; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('cosmic_ray.sources.', 'pyarrow', "
        "'astropy', 'httpx', 'fastavro', 'numpy')))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registered_source_has_the_shape(name):
    source = get_source(name)
    assert source.NAME == name
    assert callable(source.build_request) and callable(source.fetch) and callable(source.parse)


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(KeyError, match="known sources: catalog, catalogs, irsa, lsst, mast, tess, ztf"):
        get_source("gaia")


def test_every_request_is_a_request(shared_data: Path):
    """What each source builds carries its files, says whether it is remote, and its parse options."""
    tess_dir = shared_data / "tess"
    caom = shared_data / "mast-irsa-responses" / "mast" / "caom.json"
    cases = {
        "ztf": (request_for("ztf", [str(shared_data / "ztf-alerts" / "boom-v4.02")]), False),
        "catalog": (request_for("catalog", [str(shared_data / "ztf-bts" / "bts_dev_lightcurves.csv.gz")]), False),
        "catalogs": (request_for("catalogs", [str(shared_data / "tde")]), False),
        "tess files": (request_for("tess", [str(tess_dir)]), False),
        "tess TIC": (request_for("tess", ["TIC 123", str(tess_dir)]), True),
        "mast recorded": (request_for("mast", [str(caom)]), False),
        "mast search": (request_for("mast", [], IngestOptions(position=(1.0, 2.0))), True),
        "irsa ids": (request_for("irsa", ["686103400067717"], IngestOptions(object_id="SN x")), True),
    }
    for label, (request, remote) in cases.items():
        assert isinstance(request, Request), label
        assert request.remote is remote, label
        assert request_files(request) == [str(p) for p in request.files], label
        assert all(p.is_file() for p in request.files), label
    assert cases["tess TIC"][0].tic_ids == (123,) and len(cases["tess TIC"][0].files) == 4
    assert cases["irsa ids"][0].parse_options == {"object_id": "SN x"}
    assert cases["catalogs"][0].parse_options == {"assume_native_system": True}
    with pytest.raises(SourceError, match="not a source request"):
        request_files(object())


def test_recorded_paths_and_http_unwrapping(tmp_path: Path):
    recorded = tmp_path / "answer.json"
    recorded.write_text("{}")
    assert recorded_paths(str(recorded), (".json",)) == (recorded,)
    assert recorded_paths([recorded, str(recorded)], (".json",)) == (recorded, recorded)
    assert recorded_paths((1.0, 2.0), (".json",)) is None and recorded_paths("1 2", (".json",)) is None
    with pytest.raises(SourceError, match="not found"):
        recorded_paths(tmp_path / "missing.json", (".json",))
    assert FileRequest((recorded,)).files == (recorded,) and not FileRequest().remote
    assert unwrap_http(RawInput("bare", b"body"), "X") == b"body"
    assert unwrap_http(RawInput("ok", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), "X") == b"ok"
    reason = unwrap_http(RawInput("e", b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\ngone"), "X")
    assert isinstance(reason, str) and "X answered HTTP 404" in reason and "check the request" in reason
    assert "malformed HTTP answer" in str(unwrap_http(RawInput("m", b"HTTP/1.1 abc\r\n\r\n"), "X"))
