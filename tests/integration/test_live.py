"""The live path: real alert files -> DeploymentHandle -> event store (exactly once) -> GET /alerts."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import fastavro
import httpx


def _records(shared_data) -> list[dict]:
    records = []
    for path in sorted((shared_data / "ztf-alerts" / "pittgoogle" / "ZTF21abiuvdk_SN2021rhu_stream").glob("*.avro")):
        with open(path, "rb") as handle:
            records.extend({k: v for k, v in r.items() if not k.startswith("cutout")} for r in fastavro.reader(handle))
    return records


def test_alert_files_are_classified_once_and_visible_over_http(served, shared_data, event_store, trained):
    from cosmic_ray.serve import live

    records = _records(shared_data)
    assert len(records) >= 2
    handle = live.model_handle()
    first = live.classify_and_store(records, handle, event_store.events, chunk=2)
    assert first.alerts == len(records) and first.stored == first.classified == len(records) - first.unusable
    assert first.stored >= 2
    again = live.classify_and_store(records, handle, event_store.events)
    assert again.stored == 0 and again.already_stored == first.stored  # exactly once by candid
    seen = {a["candid"]: a for a in httpx.get(f"{served}/alerts", params={"limit": 1000}, timeout=30).json()}
    for record in records:
        stored = seen[record["candid"]]
        assert stored["object_id"] == "ZTF21abiuvdk" and stored["class"] in trained.classes
        assert stored["model_version"] == trained.version
        assert stored["rare"] == (stored["class"] in {"SLSN-I", "SLSN-II", "TDE", "SN Ibn/Icn"})
    # the object table: the newest alert's class, beside the position ingest gave it
    row = event_store.objects.get("ZTF21abiuvdk")
    newest = seen[max(r["candid"] for r in records)]
    assert row["class"] == newest["class"] and row["probabilities"] == newest["probabilities"]
    assert row["ra"] is not None and row["n_detections"] >= len(records)


def test_a_watcher_batch_table_goes_through_the_same_path(served, shared_data, event_store):
    from cosmic_ray.serve import live
    from cosmic_ray.sources import ztf

    path = next((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))
    parsed = ztf.parse(ztf.RawInput(path.name, path.read_bytes()))
    items = live.items_from_table(parsed.table)
    assert len(items) == parsed.alerts >= 1
    result = live.on_batch(parsed.table, settings=_settings_like(event_store))
    assert result.stored + result.already_stored == len(items)
    assert event_store.events.known_candids(i.candid for i in items) == {i.candid for i in items}


def _settings_like(event_store):
    from cosmic_ray.core.config import Settings

    return Settings(store_url=event_store.url)


def test_rare_events_reach_a_slack_compatible_webhook():
    from cosmic_ray.serve.live import notify_rare

    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        event = {
            "object_id": "ZTF1",
            "candid": 7,
            "class": "TDE",
            "probabilities": {"TDE": 0.9},
            "open_set_score": 0.3,
            "model_version": "2",
        }
        assert notify_rare(f"http://127.0.0.1:{server.server_port}/hook", [event])
        assert len(received) == 1 and "TDE" in received[0]["text"] and "ZTF1" in received[0]["text"]
        assert not notify_rare("http://127.0.0.1:1/nothing", [event])  # a dead webhook never breaks the live path
    finally:
        server.shutdown()


def test_cosmic_ray_watch_classify_stores_what_passes_the_prefilters(served, shared_data, event_store, tmp_path):
    """`cosmic-ray watch MAILBOX --classify` (its own process, attached to the running cluster):
    every alert that passes the pre-filters ends up classified in the event store, once."""
    import importlib.util
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import ray

    from cosmic_ray.ingest.lake import Lake

    mailbox = tmp_path / "mailbox"
    mailbox.mkdir()
    # 20 real alerts as ingest_bench replicates them (fresh objectId and candids, every other field
    # real), under a replica number no other test uses: the session's store holds none of them yet
    spec = importlib.util.spec_from_file_location(
        "ingest_bench", Path(__file__).resolve().parents[2] / "bench" / "ingest_bench.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    templates = [
        p.read_bytes()
        for p in sorted((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))
    ]
    first = 777 * len(templates)
    assert bench._replicate_chunk((templates, list(range(first, first + 20)), str(mailbox))) == 20
    files = sorted(mailbox.glob("*.avro"))
    env = {
        **os.environ,
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "COSMIC_RAY_HOME": str(tmp_path / "home"),
        "COSMIC_RAY_STORE_URL": event_store.url,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    in_mailbox = {r["candid"] for p in mailbox.glob("*.avro") for r in fastavro.reader(p.open("rb"))}
    assert not event_store.events.known_candids(in_mailbox)  # alerts this session's store has never seen
    cli = Path(sys.executable).parent / "cosmic-ray"
    proc = subprocess.Popen(
        [str(cli), "watch", str(mailbox), "--classify", "--interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(mailbox.glob("*.avro")) and proc.poll() is None:
            time.sleep(0.5)
        assert not any(mailbox.glob("*.avro")), "the watcher did not take every file"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    stats = json.loads(out.strip().splitlines()[-1])
    alerts = Lake(tmp_path / "home" / "lake").read_alerts()
    assert stats["files"] == len(files) and alerts.num_rows == stats["alerts"] >= len(files)
    from cosmic_ray.ingest import prefilter

    mask = prefilter.passed(alerts)
    passed = {c for c, ok in zip(alerts.column("alert_candid").to_pylist(), mask, strict=False) if ok}
    failed = set(alerts.column("alert_candid").to_pylist()) - passed
    assert stats["passed"] == len(passed) >= 1
    assert passed | failed == in_mailbox
    assert event_store.events.known_candids(passed) == passed  # every alert that passed is classified and stored
    assert not event_store.events.known_candids(failed)  # the pre-filtered ones were routed away
