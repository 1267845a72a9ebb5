"""``cosmic-ray ingest ztf`` on a folder holding a hostile Avro file (issue 18, item 5): a 78-byte
container whose header declares a foreign schema and a huge record count is one quarantined
input with its reason; the command exits 0 and the real alerts beside it reach the lake.
Runs in the session's Ray cluster (Ray Data parses the files).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from fastavro.io.binary_encoder import BinaryEncoder
from typer.testing import CliRunner

from cosmic_ray.ingest import quarantine
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.ops.cli import app


def _foreign_avro(count: int) -> bytes:
    buf = io.BytesIO()
    enc = BinaryEncoder(buf)
    buf.write(b"Obj\x01")
    enc.write_long(2)
    enc.write_utf8("avro.schema")
    enc.write_bytes(b'"null"')
    enc.write_utf8("avro.codec")
    enc.write_bytes(b"null")
    enc.write_long(0)
    buf.write(b"S" * 16)
    enc.write_long(count)
    enc.write_long(0)
    buf.write(b"S" * 16)
    return buf.getvalue()


def test_cli_ingest_quarantines_a_hostile_avro_file_and_keeps_the_rest(ray_session, tmp_path, shared_data, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    real = sorted((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))[:3]
    for path in real:
        (folder / path.name).write_bytes(path.read_bytes())
    hostile = _foreign_avro(10**5)
    assert len(hostile) <= 80
    (folder / "hostile.avro").write_bytes(hostile)
    monkeypatch.setenv("COSMIC_RAY_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["ingest", "ztf", str(folder), "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 0, result.output
    summary = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    assert summary["inputs"] == 4 and summary["alerts"] == 3 and summary["points"] > 0
    assert summary["quarantined"] == 1
    [reason] = quarantine.reasons(tmp_path / "home" / "quarantine")
    assert Path(reason["input"]).name == "hostile.avro" and "foreign writer schema" in reason["reason"]
    assert Lake(tmp_path / "lake").read_alerts().num_rows == 3
