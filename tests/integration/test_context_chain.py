"""Issue 16, items 1 and 2, through the session's real chain (Ray ingest, MLflow model, Serve + HTTP):

- the ZTF alerts the session ingested with Ray filled the lake's context table (PS1 host fields);
- ``/predict`` with a light curve and a ``context`` object hands it to the model (echoed, masked by
  the serving mode: alert_time hides the redshift); without one no context is echoed; nonsense
  context is a 422; an alert brings its own context (its PS1 host);
- ``cosmic-ray evaluate --context TABLE`` on the registered model reports the three modes side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import fastavro
import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cosmic_ray.core.context import MODES
from cosmic_ray.core.taxonomy import to_coarse
from cosmic_ray.ingest.lake import Lake

REPO = Path(__file__).resolve().parents[2]
GALAXY_ALERT = "pittgoogle/alerts-for-testing/ZTF18aamyaaj.1704217901015015001.ztf_20210901_programid1.avro"
LIGHT_CURVE = {
    "object_id": "ZTF-context-test",
    "points": [{"mjd": 59000.0 + i, "band": "gr"[i % 2], "mag": 19.0 - 0.1 * i, "magerr": 0.05} for i in range(8)],
}


def _alert(path: Path) -> dict:
    with open(path, "rb") as handle:
        record = next(iter(fastavro.reader(handle)))
    return {k: v for k, v in record.items() if not k.startswith("cutout")}


def test_ingested_alerts_filled_the_context_table(ingested, settings):
    table = Lake(settings.lake_dir).read_context()
    rows = {r["object_id"]: r for r in table.to_pylist()}
    galaxy = rows["ZTF18aamyaaj"]  # a galaxy-like PS1 source 0.41" away
    assert galaxy["source"] == "ztf_alert" and galaxy["host_mag"] == pytest.approx(17.3889, abs=1e-3)
    assert galaxy["host_offset_arcsec"] == pytest.approx(0.4096, abs=1e-3) and galaxy["gal_b"] is not None
    assert galaxy["redshift"] is None  # alerts carry none
    assert rows["ZTF18abltebw"]["host_mag"] is None  # its nearest PS1 source is a star


def test_predict_with_and_without_context(served, trained, shared_data):
    context = {"ra": 150.0, "dec": 2.2, "gal_b": 42.0, "host_mag": 18.5, "host_color": 0.6, "redshift": 0.05}
    given = httpx.post(f"{served}/predict", json={"lightcurve": LIGHT_CURVE, "context": context}, timeout=60)
    assert given.status_code == 200, given.text
    body = given.json()
    assert body["class"] in trained.classes and body["context_mode"] == "alert_time"
    assert body["context"]["host_mag"] == 18.5 and body["context"]["gal_b"] == 42.0
    assert body["context"]["redshift"] is None  # alert_time hides the redshift
    assert body["context"]["a_v"] is None and "ra" not in body["context"]  # missing stays missing; no position
    plain = httpx.post(f"{served}/predict", json={"lightcurve": LIGHT_CURVE}, timeout=60)
    assert plain.status_code == 200 and plain.json()["context"] is None and plain.json()["context_mode"] is None
    for bad in ({"gal_b": 95.0}, {"redshift": -0.1}, {"host_mag": "bright"}, {"distance": 3.0}):
        answer = httpx.post(f"{served}/predict", json={"lightcurve": LIGHT_CURVE, "context": bad}, timeout=30)
        assert answer.status_code == 422, (bad, answer.text)
        assert "context" in answer.text
    alert = _alert(shared_data / "ztf-alerts" / GALAXY_ALERT)
    both = httpx.post(f"{served}/predict", json={"alert": alert, "context": {"redshift": 0.1}}, timeout=30)
    assert both.status_code == 422 and "carries its own context" in both.text
    own = httpx.post(f"{served}/predict", json={"alert": alert}, timeout=60)
    assert own.status_code == 200, own.text
    assert own.json()["context"]["host_mag"] == pytest.approx(17.3889, abs=1e-3)  # the alert's srmag1
    assert own.json()["context"]["host_offset_arcsec"] == pytest.approx(0.4096, abs=1e-3)


def test_cli_evaluate_with_context_reports_three_modes(trained, settings, shared_data, tmp_path):
    from cosmic_ray.learn.evaluate.tables import read_table

    table = read_table(shared_data / "ztf-bts" / "bts_dev_lightcurves.csv.gz")
    labels = dict(zip(table.column("object_id").to_pylist(), table.column("label").to_pylist(), strict=False))
    by_class: dict[str, list[str]] = {}
    for oid, label in sorted(labels.items(), reverse=True):  # the newest objects: few were training objects
        by_class.setdefault(to_coarse(label), []).append(oid)
    data_ids = [o for c in trained.classes for o in by_class.get(c, [])[:6]]
    train_ids = [o for c in trained.classes for o in by_class.get(c, [])[6:16]]
    for name, ids in (("data", data_ids), ("train", train_ids)):
        part = table.filter(pc.is_in(table.column("object_id"), pa.array(ids)))
        rows = part.select(["object_id", "label", "mjd", "band", "mag", "magerr"]).to_pylist()
        lines = ["object_id,label,mjd,band,mag,magerr"] + [
            f"{r['object_id']},{r['label']},{r['mjd']},{r['band']},{r['mag']},{r['magerr']}" for r in rows
        ]
        (tmp_path / f"{name}.csv").write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        "COSMIC_RAY_HOME": str(settings.home),
        "COSMIC_RAY_SHARED_DATA": str(shared_data),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "PYTHONPATH": str(REPO),
    }
    out = tmp_path / "report.json"
    command = [sys.executable, "-m", "cosmic_ray.ops.cli", "evaluate", "--data", str(tmp_path / "data.csv")]
    command += ["--train", str(tmp_path / "train.csv"), "--draws", "1", "--k", "3", "--out", str(out)]
    command += ["--context", str(shared_data / "ztf-bts" / "bts_dev_context.csv")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    line = json.loads(done.stdout.strip().splitlines()[-1])
    report = json.loads(out.read_text())
    assert line["macro_f1"] == report["macro_f1"] == report["modes"]["alert_time"]["macro_f1"]
    assert set(report["modes"]) == set(MODES) and "context light_curve" in done.stderr
    for mode in MODES:
        rep = report["modes"][mode]
        assert 0.0 <= rep["macro_f1"] <= 1.0 and set(rep["followup"]) <= set(rep["classes"])
        assert set(rep["open_set_auroc_by_class"]) == set(rep["classes"])
