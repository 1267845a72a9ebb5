"""The whole path on a real local Ray: ingest -> featurize -> train -> register -> serve -> HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import fastavro
import httpx
from conftest import SMALL


def _alert(path: Path) -> dict:
    with open(path, "rb") as handle:
        record = next(iter(fastavro.reader(handle)))
    return {k: v for k, v in record.items() if not k.startswith("cutout")}


def test_ingest_reads_every_alert_and_quarantines_the_foreign_one(ingested, shared_data, settings):
    alerts, catalog = ingested
    n_files = len(list((shared_data / "ztf-alerts").rglob("*.avro")))
    assert alerts.inputs == n_files
    assert alerts.alerts == n_files - 1  # the DECam packet is not a ZTF alert
    assert alerts.quarantined == 1
    reasons = list(settings.quarantine_dir.glob("*.reason.json"))
    assert any("DC21baaa" in json.loads(p.read_text())["input"] for p in reasons)
    assert catalog.objects == 1621 and catalog.points > 50_000


def test_training_beats_chance_and_registers_a_production_model(trained, settings):
    from mlflow.tracking import MlflowClient

    first, last = trained.history[0], trained.history[-1]
    assert last["train_loss"] < first["train_loss"]
    assert trained.metrics["balanced_accuracy"] > trained.metrics["chance_accuracy"]
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    version = client.get_model_version_by_alias(settings.model_name, "production")
    assert str(version.version) == trained.version
    run = client.get_run(trained.run_id)
    assert run.data.params["train.episodes.k_shot"] == "5"
    assert run.data.tags["gate.promoted"] == "True"
    assert len(client.get_metric_history(trained.run_id, "train_loss")) == SMALL.epochs
    # each epoch one base class sat out of the episodes and validation registered it from k_shot examples
    novel = client.get_metric_history(trained.run_id, "val_novel_accuracy")
    assert len(novel) == SMALL.epochs and all(0.0 <= m.value <= 1.0 for m in novel)


def test_predict_a_real_alert_over_http(served, trained, shared_data):
    path = sorted((shared_data / "ztf-alerts" / "pittgoogle" / "ZTF21abiuvdk_SN2021rhu_stream").glob("*.avro"))[-1]
    answer = httpx.post(f"{served}/predict", json={"alert": _alert(path)}, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object_id"] == "ZTF21abiuvdk"
    assert body["class"] in trained.classes
    assert set(body["probabilities"]) == set(trained.classes)
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-4
    assert body["class"] == max(body["probabilities"], key=body["probabilities"].get)
    assert 0 <= body["open_set_score"] <= 1
    assert body["model_version"] == trained.version
    assert len(body["neighbours"]) == 5 and all(n["label"] in trained.classes for n in body["neighbours"])
    # the bands the model read: those of the alert's positive-difference detections (issue 17)
    points = [_alert(path)["candidate"], *(_alert(path)["prv_candidates"] or [])]
    fids = {p["fid"] for p in points if p.get("candid") and p.get("isdiffpos") in ("t", "1")}
    assert body["bands_used"] == sorted({1: "g", 2: "r", 3: "i"}[f] for f in fids)


def test_malformed_alert_gets_422_and_the_service_keeps_answering(served, shared_data):
    bad = [
        {"alert": {"objectId": "ZTF21abiuvdk"}},  # no candidate
        {"alert": {"objectId": "x", "candid": 1, "candidate": {"jd": "yesterday", "fid": 1}}},
        {
            "alert": {
                "objectId": "x",
                "candid": 1,
                "candidate": {"jd": 2459000.5, "fid": 1, "magpsf": 18.0, "sigmapsf": 0.1},
                "prv_candidates": "oops",
            }
        },
        {"alert": {}, "lightcurve": {"object_id": "a", "points": []}},
    ]
    for body in bad:
        answer = httpx.post(f"{served}/predict", json=body, timeout=30)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["detail"]
    infinite = b'{"lightcurve": {"object_id": "a", "points": [{"mjd": 1, "band": "g", "mag": 1e400, "magerr": 0.1}]}}'
    answer = httpx.post(f"{served}/predict", content=infinite, headers={"content-type": "application/json"}, timeout=30)
    assert answer.status_code == 422 and '"mag"' in answer.text  # inf is refused, with where
    not_json = httpx.post(
        f"{served}/predict", content=b"{not json", headers={"content-type": "application/json"}, timeout=30
    )
    assert not_json.status_code == 422
    assert httpx.get(f"{served}/healthz", timeout=30).status_code == 200
    path = next((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))
    assert httpx.post(f"{served}/predict", json={"alert": _alert(path)}, timeout=60).status_code == 200


def test_lightcurve_and_batch_requests(served, trained):
    lc = {
        "object_id": "ZTF-test",
        "points": [{"mjd": 59000.0 + i, "band": "gr"[i % 2], "mag": 19.0 - 0.1 * i, "magerr": 0.05} for i in range(8)],
    }
    single = httpx.post(f"{served}/predict", json={"lightcurve": lc}, timeout=60)
    assert single.status_code == 200 and single.json()["class"] in trained.classes
    batch = httpx.post(f"{served}/predict/batch", json={"items": [{"lightcurve": lc}] * 5}, timeout=60)
    assert batch.status_code == 200
    results = batch.json()["results"]
    assert len(results) == 5 and all(r["class"] == single.json()["class"] for r in results)
    too_many = httpx.post(f"{served}/predict/batch", json={"items": [{"lightcurve": lc}] * 1001}, timeout=60)
    assert too_many.status_code == 413 and "limit" in too_many.json()["detail"]


def test_oversized_body_gets_413(served):
    answer = httpx.post(
        f"{served}/predict", content=b"x" * (9 * 1024 * 1024), headers={"content-type": "application/json"}, timeout=60
    )
    assert answer.status_code == 413


def test_model_and_openapi_routes(served, trained):
    info = httpx.get(f"{served}/model", timeout=30).json()
    assert info["version"] == trained.version and info["classes"] == trained.classes
    spec = httpx.get(f"{served}/openapi.json", timeout=30).json()
    assert {"/predict", "/predict/batch", "/healthz", "/model", "/classes"} <= set(spec["paths"])


def test_cli_ingest_prints_one_json_line(tmp_path, shared_data):
    # RAY_ADDRESS=local: its own in-process cluster, never whatever else runs on the machine
    env = {
        **os.environ,
        "COSMIC_RAY_HOME": str(tmp_path / "home"),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ADDRESS": "local",
    }
    cli = [sys.executable, "-m", "cosmic_ray.ops.cli", "ingest", "ztf"]
    folder = shared_data / "ztf-alerts" / "pittgoogle" / "misc"
    proc = subprocess.run(
        [*cli, str(folder), "--lake", str(tmp_path / "lake")], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    summary = json.loads(lines[0])
    keys = {"source", "inputs", "alerts", "objects", "points", "anchors", "duplicates", "quarantined", "seconds"}
    assert set(summary) == keys | {"objects_indexed"}
    # the ingested object is in the event store's object table (the default store under the home)
    assert summary["objects_indexed"] == summary["objects"] == 1
    assert summary["inputs"] == 2 and summary["alerts"] == 1 and summary["quarantined"] == 1
    assert summary["anchors"] == 0  # alerts are light-curve points; archive observations are anchors
    missing = subprocess.run(
        [*cli, str(tmp_path / "nothing-here")], capture_output=True, text=True, env=env, timeout=300
    )
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def test_web_pages_are_served_by_the_api(served):
    page = httpx.get(f"{served}/login", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    gated = httpx.get(f"{served}/solar", timeout=30)  # pages other than /login need a session
    assert gated.status_code == 303 and gated.headers["location"].startswith("login")
    three = httpx.get(f"{served}/vendor/three/build/three.module.js", timeout=30)
    assert three.status_code == 200
