"""The webhook outbox end to end without Ray: a real HTTP receiver on loopback, a real SQLite store,
the real deliverer (httpx).

The alerts are real (positions, candids and object ids of ``ztf-alerts/pittgoogle/alerts-for-testing``);
the classifier's answers attached to them are CONSTRUCTED here (no model runs in these tests), so no
quality figure comes from them. The receiver fails the first POSTs with 500: every notification
still arrives exactly once with a 2xx, across a restart of the deliverer, with
``Idempotency-Key: <subscription>:<candid>``.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.fernet import Fernet

from cosmic_ray.serve.alerting import LiveAlerting, positions_of
from cosmic_ray.serve.db import open_engine
from cosmic_ray.serve.delivery import Deliverer, pinned_request
from cosmic_ray.serve.digest import queue_digest
from cosmic_ray.serve.egress import EgressRefused, Target, resolve_target
from cosmic_ray.serve.events import Events
from cosmic_ray.serve.secretbox import SecretBox
from cosmic_ray.serve.subscriptions import Outbox, Subscriptions
from cosmic_ray.serve.watchlists import EntryIn, Watchlists
from cosmic_ray.sources import ztf

pytestmark = pytest.mark.timeout(120)
LOOPBACK = ["127.0.0.1"]


class Receiver:
    """A webhook receiver on 127.0.0.1: answers ``fail_first`` POSTs with 500, then 200 (or ``status``)."""

    def __init__(self, fail_first: int = 0, status: int = 200, location: str | None = None, delay: float = 0.0):
        self.fail_first, self.status, self.location, self.delay = fail_first, status, location, delay
        self.posts: list[tuple[str, str, int, dict]] = []  # (path, idempotency key, status answered, body)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                data = json.loads(self.rfile.read(int(self.headers["content-length"])))
                time.sleep(receiver.delay)
                with receiver.lock:
                    status = 500 if len(receiver.posts) < receiver.fail_first else receiver.status
                    receiver.posts.append((self.path, self.headers.get("Idempotency-Key", ""), status, data))
                self.send_response(status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def ok_keys(self) -> Counter:
        return Counter(key for _, key, status, _ in self.posts if 200 <= status < 300)


@pytest.fixture(scope="module")
def real_batch(shared_data):
    """Two real alert files' lake table (what the watcher hands the live path)."""
    import pyarrow as pa

    paths = sorted((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))[:12]
    return pa.concat_tables([ztf.parse(ztf.RawInput(p.name, p.read_bytes())).table for p in paths])


def _constructed_rows(positions) -> list[dict]:
    """CONSTRUCTED classifier answers for real alerts: every third one 'SLSN-I' with p=0.8, the rest 'SN Ia'."""
    rows = []
    for i, p in enumerate(sorted(positions.values(), key=lambda q: q.candid)):
        label = "SLSN-I" if i % 3 == 0 else "SN Ia"
        rows.append(
            {
                "candid": p.candid,
                "object_id": p.object_id,
                "class": label,
                "probabilities": {label: 0.8, "other": 0.2},
                "open_set_score": 0.1 * (i % 10),
                "novel": False,
                "rare": label == "SLSN-I",
                "model_version": "constructed",
            }
        )
    return rows


def _stores(url: str, key: bytes):
    engine = open_engine(url)
    return engine, Watchlists(engine), Subscriptions(engine, SecretBox(key)), Outbox(engine)


def _drain_all(deliverer: Deliverer, outbox: Outbox, seconds: float = 30.0) -> None:
    end = time.monotonic() + seconds
    while outbox.counts().get("pending", 0) and time.monotonic() < end:
        deliverer.drain()
        time.sleep(0.02)


def test_every_match_is_delivered_exactly_once_after_failures_and_a_restart(tmp_path, real_batch, caplog):
    caplog.set_level(logging.DEBUG)
    url = f"sqlite:///{tmp_path / 'events.db'}"
    key = Fernet.generate_key()
    engine, lists, subs, outbox = _stores(url, key)
    positions = positions_of(real_batch)
    rows = _constructed_rows(positions)
    first = positions[rows[1]["candid"]]
    wl = lists.create("vera", "one real alert", [EntryIn("it", first.ra, first.dec, 3.0)])
    with Receiver(fail_first=2) as receiver:
        secret_path = "/hooks/" + secrets.token_hex(16)  # the URL's secret part: must never be logged or stored plain
        hook = receiver.url(secret_path)
        by_class = subs.create("vera", "class", {"label": "SLSN-I", "min_probability": 0.5}, hook)
        by_list = subs.create("vera", "watchlist", {"watchlist_id": wl["id"]}, hook)
        alerting = LiveAlerting(lists, subs, outbox)

        done = alerting.after_store(rows, positions)
        expected = {f"{by_class.id}:{r['candid']}" for r in rows if r["class"] == "SLSN-I"}
        expected |= {f"{by_list.id}:{first.candid}"}
        assert done.matches >= 1 and done.queued == len(expected)
        assert alerting.after_store(rows, positions).queued == 0  # the same alerts again: nothing new queued

        a = Deliverer(outbox, SecretBox(key), allow=LOOPBACK, backoff_s=0.01)
        stats = a.drain(limit=3)  # the first two POSTs fail (500), the third goes through
        assert stats.failed == 2 and stats.delivered == 1
        a.client.close()  # "restart": a new deliverer on a new engine over the same database
        _, _, _, outbox2 = _stores(url, key)
        b = Deliverer(outbox2, SecretBox(key), allow=LOOPBACK, backoff_s=0.01)
        _drain_all(b, outbox2)
        assert outbox2.counts() == {"delivered": len(expected)}
        assert set(receiver.ok_keys()) == expected and set(receiver.ok_keys().values()) == {1}
        assert len(receiver.posts) == len(expected) + 2  # two failures, then each once
        b.drain()
        assert len(receiver.posts) == len(expected) + 2  # never re-sent after a 2xx
        body = next(d for _, k, s, d in receiver.posts if s == 200 and k.startswith(f"{by_list.id}:"))
        assert body["object_id"] == first.object_id and body["target"] == "entry:it" and "text" in body
        assert all(p == secret_path for p, *_ in receiver.posts)

    raw = (
        sqlite3.connect(tmp_path / "events.db").execute("SELECT url_encrypted, url_shown FROM subscriptions").fetchall()
    )
    assert raw and all(secret_path not in enc and secret_path not in shown for enc, shown in raw)
    assert all(shown.endswith("/…") for _, shown in raw)
    assert secret_path not in caplog.text and "hooks/" not in caplog.text


def test_a_claimed_row_whose_deliverer_died_is_sent_by_the_next_one(tmp_path):
    key = Fernet.generate_key()
    engine, lists, subs, outbox = _stores(f"sqlite:///{tmp_path / 'events.db'}", key)
    with Receiver() as receiver:
        sub = subs.create("vera", "novel", {"min_score": 0.0}, receiver.url("/h"))
        outbox.enqueue([(sub.id, "42", {"candid": 42, "object_id": "ZTF21x", "reason": "test"})])
        claimed = outbox.claim(lease=timedelta(seconds=0.3))  # taken by a deliverer that then dies
        assert len(claimed) == 1 and outbox.claim() == []  # leased: nobody else sends it meanwhile
        time.sleep(0.4)
        stats = Deliverer(outbox, SecretBox(key), allow=LOOPBACK).drain()
        assert stats.delivered == 1 and receiver.ok_keys() == Counter({f"{sub.id}:42": 1})


def test_the_ssrf_guard_refuses_private_targets_unless_allowed():
    for url in (
        "http://127.0.0.1:8265/api/jobs/",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:5000/",
        "http://localhost/",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
        "file:///etc/passwd",
        "http://user:pw@example.org/",
    ):
        with pytest.raises(EgressRefused):
            resolve_target(url, allow=())
    assert resolve_target("http://127.0.0.1:9/x", allow=["127.0.0.1"]).address == "127.0.0.1"
    assert resolve_target("http://10.1.2.3/x", allow=["10.0.0.0/8"]).address == "10.1.2.3"
    with pytest.raises(EgressRefused):
        resolve_target("http://169.254.169.254/", allow=["10.0.0.0/8", "127.0.0.1"])


def test_delivery_rechecks_the_target_and_follows_no_redirect(tmp_path):
    key = Fernet.generate_key()
    engine, lists, subs, outbox = _stores(f"sqlite:///{tmp_path / 'events.db'}", key)
    with Receiver() as other, Receiver(status=302) as redirecting:
        redirecting.location = other.url("/stolen")
        sub_redirect = subs.create("vera", "novel", {}, redirecting.url("/r"))
        sub_private = subs.create("vera", "novel", {}, other.url("/p"))
        outbox.enqueue([(sub_redirect.id, "1", {"candid": 1}), (sub_private.id, "2", {"candid": 2})])
        # the deliverer without the allow-list: the loopback target is refused at delivery time
        strict = Deliverer(outbox, SecretBox(key), allow=(), backoff_s=0.01, max_attempts=1)
        assert strict.drain().dead == 2 and other.posts == [] and redirecting.posts == []
        sub3 = subs.create("vera", "novel", {}, redirecting.url("/r2"))
        outbox.enqueue([(sub3.id, "3", {"candid": 3})])
        loose = Deliverer(outbox, SecretBox(key), allow=LOOPBACK, backoff_s=0.01, max_attempts=1)
        assert loose.drain().dead == 1
        assert [p for p, *_ in redirecting.posts] == ["/r2"] and other.posts == []  # the 302 was not followed


def test_a_hanging_receiver_does_not_slow_the_live_path(tmp_path, real_batch):
    key = Fernet.generate_key()
    engine, lists, subs, outbox = _stores(f"sqlite:///{tmp_path / 'events.db'}", key)
    positions = positions_of(real_batch)
    with Receiver(delay=3.0) as slow:
        subs.create("vera", "novel", {"min_score": 0.0}, slow.url("/slow"))
        deliverer = Deliverer(outbox, SecretBox(key), allow=LOOPBACK, timeout_s=1.0, backoff_s=0.01)
        deliverer.start(poll_s=0.05)
        alerting = LiveAlerting(lists, subs, outbox, deliverer)
        try:
            start = time.perf_counter()
            queued = alerting.after_store(_constructed_rows(positions), positions).queued
            elapsed = time.perf_counter() - start
        finally:
            alerting.close()
    assert queued == len(positions) and elapsed < 1.0  # queued only: the deliverer's timeouts are its own


def test_the_nightly_digest_lists_the_most_anomalous_new_objects_once(tmp_path, real_batch):
    key = Fernet.generate_key()
    engine, lists, subs, outbox = _stores(f"sqlite:///{tmp_path / 'events.db'}", key)
    rows = _constructed_rows(positions_of(real_batch))
    night = datetime(2021, 9, 1, 3, 0)
    Events(engine).record_classifications([{**r, "classified_at": night} for r in rows])
    with Receiver() as receiver:
        sub = subs.create("vera", "digest", {"top": 3}, receiver.url("/digest"))
        assert queue_digest(engine, subs, outbox, "20210901")["queued"] == 1
        assert queue_digest(engine, subs, outbox, "20210901")["queued"] == 0  # once per night
        Deliverer(outbox, SecretBox(key), allow=LOOPBACK).drain()
        ((_, idem, _, body),) = receiver.posts
    assert idem == f"{sub.id}:digest-20210901" and body["night"] == "20210901"
    scores = [o["open_set_score"] for o in body["objects"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert scores[0] == max(r["open_set_score"] for r in rows)
    assert len({o["object_id"] for o in body["objects"]}) == 3 and body["text"].startswith("cosmic_ray: the 3")


def test_a_delivery_connects_to_the_checked_address_with_the_host_in_header_and_sni():
    target = Target("https://hooks.example.org:8443/T0/B1?x=1", "hooks.example.org", "93.184.215.14")
    url, headers, extensions = pinned_request(target, "7:123")
    assert url == "https://93.184.215.14:8443/T0/B1?x=1"
    assert headers["Host"] == "hooks.example.org:8443" and headers["Idempotency-Key"] == "7:123"
    assert extensions == {"sni_hostname": "hooks.example.org"}  # TLS checks the certificate against the name
    v6 = pinned_request(
        Target("http://h.example.org/x", "h.example.org", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"), "k"
    )
    assert v6[0] == "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/x" and v6[2] == {}


def test_a_batch_read_again_after_a_crash_before_queueing_gets_its_notifications_once(tmp_path, real_batch):
    """The live path stored the classifications, then died before matching and queueing: the watcher
    reads the same files again (they never left the mailbox), the alerts are known, and their
    matches and notifications are made then, once."""
    key = Fernet.generate_key()
    engine, lists, subs, outbox = _stores(f"sqlite:///{tmp_path / 'events.db'}", key)
    positions = positions_of(real_batch)
    rows = _constructed_rows(positions)
    some = positions[rows[0]["candid"]]
    wl = lists.create("vera", "w", [EntryIn("it", some.ra, some.dec, 2.0)])
    sub = subs.create("vera", "watchlist", {"watchlist_id": wl["id"]}, "http://127.0.0.1:9/h")
    novel = subs.create("vera", "novel", {"min_score": 0.85}, "http://127.0.0.1:9/h")
    Events(engine).record_classifications(rows)  # stored; the process died here
    alerting = LiveAlerting(lists, subs, outbox)
    candids = [r["candid"] for r in rows]
    done = alerting.after_store([], positions, already_stored=candids)
    high = [r for r in rows if r["open_set_score"] >= 0.85]
    assert done.matches == 1 and done.queued == 1 + len(high) and high
    assert alerting.after_store([], positions, already_stored=candids).queued == 0
    with engine.connect() as conn:
        keys = {f"{s}:{k}" for s, k in conn.exec_driver_sql("SELECT subscription_id, item_key FROM outbox")}
    assert keys == {f"{sub.id}:{some.candid}"} | {f"{novel.id}:{r['candid']}" for r in high}
