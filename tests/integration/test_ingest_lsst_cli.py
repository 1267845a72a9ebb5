"""``cosmic-ray ingest lsst FILE...`` end to end in the session's Ray cluster (Ray Data parses the
files): rows reach the lake with nanojansky fluxes, bands in ugrizy and the TAI time scale; a bad
file is quarantined with its reason and the command exits 0.

The LSST packets are SIMULATED (the shared PLAsTiCC/ELAsTiCC starter-kit alert and the sample
lsst-alert-packet ships for schema 11.1): format checks only.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
from lsst.alert.packet import get_schema_root
from typer.testing import CliRunner

from cosmic_ray.core.lightcurve import BANDS
from cosmic_ray.ingest import quarantine
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.ops.cli import app


def test_cli_ingest_lsst_writes_nanojansky_tai_rows_simulated(ray_session, tmp_path, shared_data, monkeypatch):
    kit = next((shared_data / "plasticc-elasticc-SIMULATED" / "lsst_v4_1_starterkit").glob("*.avro"))
    sample = Path(str(get_schema_root())) / "11" / "1" / "sample_data" / "fakeAlert.avro"
    bad = tmp_path / "truncated.avro"
    bad.write_bytes(sample.read_bytes()[:300])
    monkeypatch.setenv("COSMIC_RAY_HOME", str(tmp_path / "home"))
    args = ["ingest", "lsst", str(kit), str(sample), str(bad), "--lake", str(tmp_path / "lake")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    assert summary["inputs"] == 3 and summary["alerts"] == 2 and summary["quarantined"] == 1
    [reason] = quarantine.reasons(tmp_path / "home" / "quarantine")
    assert Path(reason["input"]).name == "truncated.avro" and "Avro container" in reason["reason"]

    stored = Lake(tmp_path / "lake").read(sources=["lsst_alert"])
    sent = {}
    for path in (kit, sample):
        for packet in fastavro.reader(io.BytesIO(path.read_bytes())):
            for src in [packet["diaSource"], *packet["prvDiaSources"]]:
                sent.setdefault(src["diaSourceId"], src.get("psfFlux", src.get("psFlux")))
    assert dict(zip(stored.column("candid").to_pylist(), stored.column("flux").to_pylist(), strict=True)) == sent
    assert set(stored.column("time_scale").to_pylist()) == {"tai"}
    assert set(stored.column("band").to_pylist()) <= set(BANDS)
    assert all(oid.startswith("lsst:") for oid in stored.column("object_id").to_pylist())
