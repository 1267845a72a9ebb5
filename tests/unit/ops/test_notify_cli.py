"""``cosmic-ray notify run --once`` and ``cosmic-ray notify digest`` as their own processes, on a real
SQLite store and a real loopback receiver (allowed through ``COSMIC_RAY_WEBHOOK_ALLOW``).

The classifications are CONSTRUCTED (three made-up objects; no model runs here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cosmic_ray.core.config import Settings
from cosmic_ray.serve.db import open_engine
from cosmic_ray.serve.events import Events
from cosmic_ray.serve.secretbox import secret_box
from cosmic_ray.serve.subscriptions import Outbox, Subscriptions

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[3]


def _cli(home: Path, *args: str) -> dict:
    env = {
        **os.environ,
        "COSMIC_RAY_HOME": str(home),
        "COSMIC_RAY_WEBHOOK_ALLOW": '["127.0.0.1"]',
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-m", "cosmic_ray.ops.cli", *args], env=env, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    return {"out": json.loads(done.stdout.strip().splitlines()[-1]), "err": done.stderr}


def test_notify_digest_then_run_once_delivers_and_logs_no_url(tmp_path):
    received: list[tuple[str, dict]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            received.append(
                (self.headers["Idempotency-Key"], json.loads(self.rfile.read(int(self.headers["content-length"]))))
            )
            self.send_response(200 if len(received) > 1 else 503)  # the first attempt fails
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = Settings(home=tmp_path)
        engine = open_engine(settings.event_store_url)
        hook = f"http://127.0.0.1:{server.server_port}/digest-hook-path"
        sub = Subscriptions(engine, secret_box(settings)).create("vera", "digest", {"top": 2}, hook)
        Events(engine).record_classifications(
            {
                "candid": 100 + i,
                "object_id": f"CONSTRUCTED{i}",
                "class": "SN Ia",
                "probabilities": {"SN Ia": 0.9},
                "open_set_score": score,
                "novel": False,
                "rare": False,
                "model_version": "constructed",
                "classified_at": datetime(2021, 9, 1, 5),
            }
            for i, score in enumerate([0.2, 0.9, 0.5])
        )
        queued = _cli(tmp_path, "notify", "digest", "--night", "20210901")["out"]
        assert queued == {"night": "20210901", "subscriptions": 1, "queued": 1, "objects": 2}
        first = _cli(tmp_path, "notify", "run", "--once")
        assert first["out"]["failed"] == 1 and first["out"]["delivered"] == 0  # 503: due again after the back-off
        with engine.begin() as conn:  # skip the 5 s back-off rather than sleep through it
            conn.exec_driver_sql("UPDATE outbox SET next_attempt_at = '2000-01-01 00:00:00'")
        second = _cli(tmp_path, "notify", "run", "--once")
        assert second["out"]["delivered"] == 1
        assert Outbox(engine).counts() == {"delivered": 1}
        assert [k for k, _ in received] == [f"{sub.id}:digest-20210901"] * 2
        assert [o["object_id"] for o in received[-1][1]["objects"]] == ["CONSTRUCTED1", "CONSTRUCTED2"]
        assert "digest-hook-path" not in first["err"] + second["err"]
    finally:
        server.shutdown()
        server.server_close()
