"""Stream benchmark: Kafka -> lake (-> served model -> event store) with the real consumer.

Input: the 50 real public alerts of ``ztf-alerts/pittgoogle/alerts-for-testing`` REPLICATED to as
many messages as needed (each copy gets a fresh objectId and candids shifted by ``copy * 2**40``,
so the lake and the store keep copies apart). Each message is one Avro container with the real
writer schema, as ZTF sends them; the cutouts are dropped (``--keep-cutouts`` keeps them) so that
100,000 messages fit in the embedded in-memory broker; the classifier does not read cutouts.
The broker is the embedded tansu (loopback, in memory), started by this script.

Parts (each prints a table row on stderr; one JSON line on stdout at the end):
  baseline: bare ``fastavro`` decoding of the same messages (1 process) in this run;
  rate:     a producer process paces ``--rate`` alerts/s for ``--rate-seconds``; the consumer (this
            process) keeps up or not: sustained alerts/s, p50/p99 latency per alert (producer's
            create time -> offset committed, i.e. in the lake and, with ``--classify``, stored);
  burst:    ``--burst`` alerts produced at once into an idle consumer: time until all are
            committed, alerts/s, p50/p99 latency, lost/doubled (lake and store counts);
  memory:   ``cosmic-ray stream`` as a subprocess (lake only) over ``--memory-alerts`` produced in
            waves of 10,000; its RSS after 10,000 and at the end.

``--classify`` first builds a throwaway stack in this process (local Ray, the real BTS light
curves, a small model trained and served: ~3 min), as the test fixtures do, and tears it down.

    .venv/bin/python bench/stream_bench.py --classify --burst 10000 --rate 200 --memory-alerts 100000
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from procfs import rss_mib  # noqa: E402

from cosmic_ray.core.config import Settings  # noqa: E402
from cosmic_ray.ingest.lake import Lake  # noqa: E402
from cosmic_ray.stream.broker import EmbeddedBroker, ensure_topics  # noqa: E402
from cosmic_ray.stream.consumer import StreamConfig  # noqa: E402
from cosmic_ray.stream.decode import Message  # noqa: E402
from cosmic_ray.stream.replay import produce  # noqa: E402
from cosmic_ray.stream.run import build_consumer  # noqa: E402

log = logging.getLogger("stream_bench")
SHIFT = 1 << 40


def shared_data() -> Path:
    return Path(os.environ.get("COSMIC_RAY_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


# ----------------------------------------------------------------------------- input
class Replicator:
    """Real alerts, replicated: message ``k`` is template ``k % 50`` as copy ``k // 50``."""

    def __init__(self, keep_cutouts: bool = False):
        folder = shared_data() / "ztf-alerts" / "pittgoogle" / "alerts-for-testing"
        self.templates = []
        for path in sorted(folder.glob("*.avro")):
            reader = fastavro.reader(io.BytesIO(path.read_bytes()))
            schema = fastavro.parse_schema(reader.writer_schema)
            record = next(iter(reader))
            if not keep_cutouts:
                record = {k: (None if k.startswith("cutout") else v) for k, v in record.items()}
            self.templates.append((schema, record))

    def message(self, k: int) -> bytes:
        schema, record = self.templates[k % len(self.templates)]
        copy = k // len(self.templates)
        rec = dict(record)
        if copy:
            rec["objectId"] = f"{record['objectId']}r{copy}"
            rec["candid"] = record["candid"] + copy * SHIFT
            rec["candidate"] = {**record["candidate"], "candid": record["candidate"]["candid"] + copy * SHIFT}
        out = io.BytesIO()
        fastavro.writer(out, schema, [rec])
        return out.getvalue()

    def messages(self, start: int, n: int) -> list[bytes]:
        return [self.message(k) for k in range(start, start + n)]


def baseline(values: list[bytes]) -> float:
    """Bare fastavro decoding, alerts/s (1 process)."""
    t = time.perf_counter()
    for value in values:
        for _ in fastavro.reader(io.BytesIO(value)):
            pass
    return len(values) / (time.perf_counter() - t)


# ----------------------------------------------------------------------------- the consumer
class Latencies:
    def __init__(self) -> None:
        self.values: list[float] = []
        self.first_sent = float("inf")
        self.last_commit = 0.0
        self.lock = threading.Lock()

    def __call__(self, messages: list[Message], committed_at: float) -> None:
        with self.lock:
            self.values.extend(committed_at - m.timestamp_ms / 1000 for m in messages)
            self.first_sent = min(self.first_sent, *(m.timestamp_ms / 1000 for m in messages))
            self.last_commit = committed_at

    def summary(self) -> dict[str, float]:
        arr = np.asarray(self.values)
        return {"p50_s": round(float(np.percentile(arr, 50)), 3), "p99_s": round(float(np.percentile(arr, 99)), 3)}


def _pace(bootstrap: str, topic: str, rate: float, seconds: float, start: int, keep_cutouts: bool) -> None:
    """Producer process: ``rate`` messages/s for ``seconds`` (encoded ahead, sent on time)."""
    values = Replicator(keep_cutouts).messages(start, int(rate * seconds))
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    t0 = time.monotonic()
    for i, value in enumerate(values):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        producer.produce(topic, value)
        producer.poll(0)
    producer.flush(60)


def run_consumer(settings: Settings, bootstrap: str, topic: str, n: int, classify: bool, latencies: Latencies) -> Any:
    config = StreamConfig(
        (topic,), group=f"bench-{uuid.uuid4().hex[:6]}", batch_size=500, max_messages=n, poll_timeout=0.2
    )
    consumer = build_consumer(settings, bootstrap, config, classify=classify, on_committed=latencies)
    return consumer


def part_rate(
    settings: Settings, bootstrap: str, rate: float, seconds: float, classify: bool, keep: bool, start: int
) -> dict[str, Any]:
    topic = f"rate-{uuid.uuid4().hex[:6]}"
    ensure_topics(bootstrap, [topic])
    n = int(rate * seconds)
    lat = Latencies()
    consumer = run_consumer(settings, bootstrap, topic, n, classify, lat)
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(stats=consumer.run()))
    thread.start()
    while not consumer._has_partitions:  # joined: the clock starts with the producer
        time.sleep(0.05)
    proc = mp.get_context("spawn").Process(target=_pace, args=(bootstrap, topic, rate, seconds, start, keep))
    t0 = time.time()
    proc.start()
    proc.join()
    thread.join(timeout=seconds * 10 + 300)
    stats = box["stats"]
    span = lat.last_commit - lat.first_sent  # first message sent -> last one committed
    log.info("rate: producer process started %.1f s before its first message", lat.first_sent - t0)
    return {
        "offered_per_s": rate,
        "alerts": n,
        "sustained_per_s": round(stats.messages / span, 1),
        **lat.summary(),
        "stored": stats.stored,
        "classified": stats.classified,
    }


def part_burst(settings: Settings, bootstrap: str, n: int, classify: bool, keep: bool, start: int) -> dict[str, Any]:
    topic = f"burst-{uuid.uuid4().hex[:6]}"
    ensure_topics(bootstrap, [topic])
    values = Replicator(keep).messages(start, n)
    lat = Latencies()
    consumer = run_consumer(settings, bootstrap, topic, n, classify, lat)
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(stats=consumer.run()))
    thread.start()
    while not consumer._has_partitions:
        time.sleep(0.05)
    t0 = time.time()
    produce({"bootstrap.servers": bootstrap}, topic, values)
    produced = time.time() - t0
    thread.join(timeout=1800)
    stats = box["stats"]
    all_in = lat.last_commit - t0
    out: dict[str, Any] = {
        "alerts": n,
        "produce_s": round(produced, 2),
        "all_committed_s": round(all_in, 2),
        "per_s": round(n / all_in, 1),
        **lat.summary(),
        "passed": stats.passed,
        "classified": stats.classified,
        "stored": stats.stored,
    }
    out["lake_alert_rows"] = _lake_alerts_of(settings, start, n)
    if classify:
        from cosmic_ray.serve.store import Store  # deferred: only with --classify

        store = Store.open(settings.event_store_url)
        wanted = _candids(start, n, keep)
        out["store_rows"] = len(store.events.known_candids(wanted))
        store.close()
    return out


def _candids(start: int, n: int, keep: bool) -> set[int]:
    rep = Replicator(keep)
    out = set()
    for k in range(start, start + n):
        _, record = rep.templates[k % len(rep.templates)]
        out.add(int(record["candid"]) + (k // len(rep.templates)) * SHIFT)
    return out


def _lake_alerts_of(settings: Settings, start: int, n: int) -> dict[str, int]:
    alerts = Lake(settings.lake_dir).read_alerts()
    wanted = _candids(start, n, False)
    got = [c for c in alerts.column("alert_candid").to_pylist() if c in wanted]
    return {"wanted": len(wanted), "rows": len(got), "distinct": len(set(got))}


def part_memory(bootstrap: str, total: int, wave: int, keep: bool, start: int) -> dict[str, Any]:
    topic, group = f"mem-{uuid.uuid4().hex[:6]}", f"mem-{uuid.uuid4().hex[:6]}"
    ensure_topics(bootstrap, [topic])
    home = Path(tempfile.mkdtemp(prefix="stream-bench-mem-"))
    env = {**os.environ, "COSMIC_RAY_HOME": str(home), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "cosmic_ray.ops.cli", "stream", "--bootstrap", bootstrap, "--topic", topic]
    # no --max-messages: the consumer stays up until the last wave is committed and measured, then SIGTERM
    cmd += ["--group", group, "--batch-size", "500"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})

    def committed() -> int:
        (tp,) = watcher.committed([TopicPartition(topic, 0)], timeout=10)
        return max(tp.offset, 0)

    rss: dict[int, float] = {}
    rep = Replicator(keep)
    sent = 0
    t0 = time.time()
    try:
        while sent < total:
            n = min(wave, total - sent)
            produce({"bootstrap.servers": bootstrap}, topic, rep.messages(start + sent, n))
            sent += n
            while committed() < sent:
                if proc.poll() is not None:
                    break
                time.sleep(0.5)
            rss[sent] = rss_mib(proc.pid) or float("nan")
            log.info("memory: %d alerts committed, consumer RSS %.0f MiB", sent, rss[sent])
        proc.send_signal(signal.SIGTERM)  # finishes the batch in hand, commits, prints its summary, exits 0
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        watcher.close()
    first = rss[min(rss)]
    return {
        "alerts": total,
        "rss_mib": {str(k): round(v, 1) for k, v in rss.items()},
        "growth_mib_from_first_wave": round(rss[max(rss)] - first, 1),  # last wave, consumer still running
        "peak_growth_mib": round(max(rss.values()) - first, 1),
        "seconds": round(time.time() - t0, 1),
        "consumer": json.loads(out.strip().splitlines()[-1]) if out.strip() else None,
    }


# ----------------------------------------------------------------------------- the served stack
def serve_stack(settings: Settings) -> None:
    """Local Ray in this process, the real data ingested, a small model trained and served."""
    import ray  # deferred: only --classify needs Ray

    from cosmic_ray.core.config import DataConfig, EpisodeConfig, ScalingConfig, TrainConfig
    from cosmic_ray.ops import deploy as serving
    from cosmic_ray.ops import pipeline

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    inputs = pipeline.default_inputs(settings)
    pipeline.ingest_defaults(settings, inputs)
    small = TrainConfig(
        seed=0,
        epochs=3,
        lr=3e-3,
        data=DataConfig(max_objects_per_class=80),
        episodes=EpisodeConfig(n_way=4, k_shot=5, n_query=5, per_epoch=25),
        scaling=ScalingConfig(num_workers=2),
    )
    pipeline.train_from_lake(settings, small)
    serving.deploy(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classify", action="store_true", help="through a served model into the event store")
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--rate-seconds", type=float, default=30.0)
    parser.add_argument("--memory-alerts", type=int, default=100_000, help="0: skip")
    parser.add_argument("--wave", type=int, default=10_000)
    parser.add_argument("--keep-cutouts", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("cosmic_ray.stream.consumer", "cosmic_ray.serve.live", "cosmic_ray.stream.replay"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    result: dict[str, Any] = {"load_average": os.getloadavg(), "classify": args.classify}
    home = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    settings = Settings(home=home, shared_data=shared_data(), mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    rep = Replicator(args.keep_cutouts)
    sample = rep.messages(0, 2000)
    result["message_bytes_mean"] = int(np.mean([len(v) for v in sample]))
    result["baseline_fastavro_per_s"] = round(baseline(sample), 1)
    log.info(
        "baseline: bare fastavro %.0f alerts/s; %d bytes per message",
        result["baseline_fastavro_per_s"],
        result["message_bytes_mean"],
    )
    if args.classify:
        t = time.time()
        serve_stack(settings)
        log.info("served stack up in %.0f s", time.time() - t)
    # the baseline again, right before the measured parts (the machine's load moves by the minute)
    result["baseline_fastavro_per_s"] = round(baseline(sample), 1)
    result["load_average_at_baseline"] = os.getloadavg()
    with EmbeddedBroker() as broker:
        start = 10_000_000  # copies far from the templates' own candids (the demo lake has those)
        if args.burst:
            result["burst"] = part_burst(
                settings, broker.bootstrap, args.burst, args.classify, args.keep_cutouts, start
            )
            result["burst"]["x_baseline"] = round(result["burst"]["per_s"] / result["baseline_fastavro_per_s"], 3)
            log.info("burst: %s", result["burst"])
            start += args.burst
        if args.rate:
            result["rate"] = part_rate(
                settings, broker.bootstrap, args.rate, args.rate_seconds, args.classify, args.keep_cutouts, start
            )
            log.info("rate: %s", result["rate"])
            start += int(args.rate * args.rate_seconds)
        if args.memory_alerts:
            result["memory"] = part_memory(broker.bootstrap, args.memory_alerts, args.wave, args.keep_cutouts, start)
            log.info("memory: %s", result["memory"])
    if args.classify:
        import ray  # deferred: only --classify started it

        from cosmic_ray.ops import deploy as serving

        serving.shutdown()
        ray.shutdown()
    result["load_average_end"] = os.getloadavg()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
