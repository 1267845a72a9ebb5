"""The live path with watchlists and webhooks on the real Serve app: real alerts (the 34 alerts of
ZTF21abiuvdk / SN 2021rhu) -> ``live.on_batch`` -> the model replicas -> the event store -> watchlist
matches and the outbox -> the background deliverer -> a real loopback receiver that fails first.

The watchlist entry is CONSTRUCTED around the first alert's real position; the store is this
test's own (so the session store's earlier classifications do not hide these alerts).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa


def test_on_batch_matches_watchlists_and_delivers_each_notification_once(served, shared_data, tmp_path):
    from cosmic_ray.core.config import Settings
    from cosmic_ray.serve import live
    from cosmic_ray.serve.db import open_engine
    from cosmic_ray.serve.secretbox import secret_box
    from cosmic_ray.serve.subscriptions import SYSTEM_OWNER, Outbox, Subscriptions
    from cosmic_ray.serve.watchlists import EntryIn, Watchlists
    from cosmic_ray.sources import ztf

    posts: list[tuple[str, str, int]] = []
    lock = threading.Lock()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            json.loads(self.rfile.read(int(self.headers["content-length"])))
            with lock:
                status = 500 if len(posts) < 2 else 200
                posts.append((self.path, self.headers["Idempotency-Key"], status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    settings = Settings(
        home=tmp_path,
        store_url=f"sqlite:///{tmp_path / 'events.db'}",
        webhook_allow=["127.0.0.1"],
        webhook_backoff_s=0.05,
        rare_webhook_url=f"{base}/rare",
    )
    paths = sorted((shared_data / "ztf-alerts" / "pittgoogle" / "ZTF21abiuvdk_SN2021rhu_stream").glob("*.avro"))
    table = pa.concat_tables([ztf.parse(ztf.RawInput(p.name, p.read_bytes())).table for p in paths])
    first = table.filter(pa.compute.equal(table["candid"], table["alert_candid"])).slice(0, 1).to_pylist()[0]
    engine = open_engine(settings.event_store_url)
    lists = Watchlists(engine)
    wl = lists.create("ada", "SN 2021rhu", [EntryIn("rhu", first["ra"], first["dec"], 5.0)])
    subs = Subscriptions(engine, secret_box(settings))
    to_list = subs.create("ada", "watchlist", {"watchlist_id": wl["id"]}, f"{base}/list")
    to_class = subs.create("ada", "class", {"label": "SN Ia", "min_probability": 0.0}, f"{base}/class")
    try:
        result = live.on_batch(table, settings)
        stored = result.stored
        assert stored >= 2 and result.watchlist_matches == stored  # every alert of the object is within 5"
        system = [s.id for s in subs.list_for(SYSTEM_OWNER)]
        expected = (len(result.rare) if system else 0) + 2 * stored  # the rare webhook: a _system subscription
        assert result.notifications_queued == expected
        outbox = Outbox(engine)
        deadline = time.monotonic() + 90
        while outbox.counts().get("pending", 0) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert outbox.counts() == {"delivered": expected}
        ok = Counter(key for _, key, status in posts if status == 200)
        assert set(ok.values()) == {1} and len(ok) == expected  # each once, after the two failures
        assert len(posts) == expected + 2
        assert sum(k.startswith(f"{to_list.id}:") for k in ok) == stored
        assert sum(k.startswith(f"{to_class.id}:") for k in ok) == stored
        assert {m["candid"] for m in lists.matches(wl["id"], limit=1000)} == {
            int(k.split(":")[1]) for k in ok if k.startswith(f"{to_list.id}:")
        }
        again = live.on_batch(table, settings)  # the same alerts again: nothing stored, matched or queued
        assert again.stored == 0 and again.notifications_queued == 0
    finally:
        live.stop_alerting()
        server.shutdown()
        server.server_close()
