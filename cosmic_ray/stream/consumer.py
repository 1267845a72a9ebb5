"""The stream consumer: Kafka topics -> the lake (pre-filters, quarantine) -> with ``--classify``
the served model -> the event store (and ``--publish``: a topic of classifications).

It is the mailbox watcher's pipeline (:mod:`cosmic_ray.ingest.watch`) with Kafka instead of a
folder. Each batch of messages is parsed (:func:`cosmic_ray.stream.decode.parse_messages`),
appended to the lake and flushed, classified, published and stored, and only then are its
offsets committed. A consumer killed at any point and restarted reads the uncommitted messages
again: the lake's key index drops the points already written, the event store keeps one row
per candid (``known_candids``: already stored alerts are not classified again), so nothing is
lost and nothing doubles. Published records may repeat after such a kill (at least once; keyed
by candid). A new consumer group starts at the earliest offset.

One consumer per lake: the lake's key index lives in the process, so two consumers of one group
writing one lake could both write a message that a rebalance hands from one to the other.
"""

from __future__ import annotations

import logging
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Consumer, KafkaError, TopicPartition

from cosmic_ray.ingest import prefilter
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.ingest.prefilter import PrefilterConfig
from cosmic_ray.sources.ztf_context import HOST_MAX_ARCSEC, context_from_alerts
from cosmic_ray.stream.decode import Message, parse_messages
from cosmic_ray.stream.publish import Publisher

log = logging.getLogger(__name__)

Rows = list[dict[str, Any]]


class ClassifyHook(Protocol):
    """Classify a batch's passed alerts (lake points) and store them; ``before_store`` gets the
    classification rows before they are stored (the publisher). Returns the live path's result."""

    def __call__(self, table: pa.Table, before_store: Callable[[Rows], object] | None) -> Any: ...


@dataclass(frozen=True)
class StreamConfig:
    """What ``cosmic-ray stream`` consumes and how.

    Attributes:
        topics: the topics to read.
        group: the consumer group (a new one starts at the earliest offset).
        batch_size: most messages per batch (one lake flush, one classify call, one commit).
        poll_timeout: seconds a poll waits for the first message of a batch.
        max_messages: stop once this many messages were committed (demo, tests, benchmarks).
        idle_exit_s: stop once nothing arrived for this long.
        heartbeat_file: touched after every poll (a liveness probe checks its age).
        host_max_arcsec: farthest PS1 galaxy an alert's context takes for the host
            (:mod:`cosmic_ray.sources.ztf_context`), as batch ingest does.
    """

    topics: tuple[str, ...]
    group: str = "cosmic-ray"
    batch_size: int = 500
    poll_timeout: float = 1.0
    max_messages: int | None = None
    idle_exit_s: float | None = None
    heartbeat_file: Path | None = None
    host_max_arcsec: float = HOST_MAX_ARCSEC


@dataclass
class StreamStats:
    """Running totals (the JSON line ``cosmic-ray stream`` prints when it stops)."""

    batches: int = 0
    messages: int = 0
    alerts: int = 0
    points: int = 0
    duplicates: int = 0
    quarantined: int = 0
    passed: int = 0
    classified: int = 0
    stored: int = 0
    published: int = 0
    hook_failures: int = 0  # batches whose classify/publish/store failed (read again, not committed)
    errors: int = 0  # consumer errors the client reported (it retries by itself)
    seconds: float = 0.0
    last_offsets: dict[str, int] = field(default_factory=dict)  # "topic[partition]" -> next offset

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StreamConsumer:
    """Consume ``config.topics`` into the lake at ``lake_dir`` (and classify, publish, store)."""

    def __init__(
        self,
        consumer_conf: Mapping[str, Any],
        config: StreamConfig,
        lake_dir: Path | str,
        quarantine_dir: Path | str,
        classify: ClassifyHook | None = None,
        publisher: Publisher | None = None,
        prefilter_cfg: PrefilterConfig | None = None,
        on_committed: Callable[[list[Message], float], None] | None = None,
    ):
        self.config = config
        self.lake = Lake(lake_dir)
        self.quarantine_dir = Path(quarantine_dir)
        self.classify = classify
        self.publisher = publisher
        self.prefilter_cfg = prefilter_cfg or PrefilterConfig()
        self.on_committed = on_committed
        self.stats = StreamStats()
        self._consumer = Consumer(dict(consumer_conf))
        self._stop = False
        self._has_partitions = False

    # ------------------------------------------------------------------ one batch
    def _poll(self) -> list[Message]:
        taken = self._consumer.consume(num_messages=self.config.batch_size, timeout=self.config.poll_timeout)
        out = []
        for m in taken:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self.stats.errors += 1
                    log.warning("stream: consumer error: %s", err)
                continue
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            if topic is None or partition is None or offset is None:
                continue
            out.append(Message(topic, partition, offset, m.value() or b"", m.timestamp()[1]))
        return out

    def _before_store(self) -> Callable[[Rows], object] | None:
        """The publisher as the live path's ``before_store`` hook (None without ``--publish``)."""
        if self.publisher is None:
            return None
        publisher = self.publisher

        def publish(rows: Rows) -> None:
            self.stats.published += publisher.publish(rows)

        return publish

    def _classify(self, parsed_points: pa.Table, alerts: pa.Table | None) -> bool:
        """Run the classify hook over the passed alerts; False when it failed (the batch is read again)."""
        if self.classify is None or alerts is None:
            return True
        ok = prefilter.passed(alerts)
        keep = alerts.filter(pa.array(ok)).column("alert_candid")
        table = parsed_points.filter(pc.is_in(parsed_points.column("alert_candid"), keep))
        try:
            result = self.classify(table, self._before_store())
        except Exception as exc:  # noqa: BLE001 - model app down, broker away...: read the batch again later
            log.warning(
                "stream: classify/publish/store failed (%s: %s); the batch is read again", type(exc).__name__, exc
            )
            self.stats.hook_failures += 1
            return False
        self.stats.classified += int(getattr(result, "classified", 0))
        self.stats.stored += int(getattr(result, "stored", 0))
        return True

    def _rewind(self, messages: list[Message]) -> None:
        """Seek each partition back to the batch's first offset (nothing of it was committed)."""
        first: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.topic, m.partition)
            first[key] = min(first.get(key, m.offset), m.offset)
        for (topic, partition), offset in first.items():
            self._consumer.seek(TopicPartition(topic, partition, offset))

    def _commit(self, messages: list[Message]) -> None:
        nxt: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.topic, m.partition)
            nxt[key] = max(nxt.get(key, 0), m.offset + 1)
        self._consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in nxt.items()], asynchronous=False)
        for (t, p), o in nxt.items():
            self.stats.last_offsets[f"{t}[{p}]"] = o

    def step(self) -> int:
        """Take one batch through the whole path; returns how many messages it took (0: none waiting)."""
        messages = self._poll()
        if not messages:
            return 0
        run_id = f"stream{uuid.uuid4().hex[:6]}"
        parsed = parse_messages(messages, self.quarantine_dir, run_id, self.prefilter_cfg)
        result = self.lake.append(parsed.points, defer=True)
        if parsed.alerts is not None:
            self.lake.append_alerts(parsed.alerts, defer=True)
            # the alerts' context (position, PS1 host), as batch ingest and the mailbox watcher write it
            self.lake.append_context(context_from_alerts(parsed.alerts, self.config.host_max_arcsec))
        self.lake.flush()  # points first, then the per-alert rows; both deduplicated on a rerun
        if not self._classify(parsed.points, parsed.alerts):
            self._rewind(messages)
            time.sleep(1.0)
            return len(messages)
        self._commit(messages)  # only now: lake, store (and published topic) have the batch
        if self.on_committed is not None:
            self.on_committed(messages, time.time())
        self.stats.batches += 1
        self.stats.messages += len(messages)
        self.stats.alerts += parsed.n_alerts
        self.stats.points += result.written
        self.stats.duplicates += result.duplicates
        self.stats.quarantined += parsed.quarantined
        if parsed.alerts is not None:
            self.stats.passed += int(prefilter.passed(parsed.alerts).sum())
        log.info("stream: %d messages, %d alerts, %d new points", len(messages), parsed.n_alerts, result.written)
        return len(messages)

    # ------------------------------------------------------------------ the loop
    def _assigned(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self._has_partitions = True
        log.info("stream: assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))

    def stop(self, *_: Any) -> None:
        """Finish the batch in hand, commit it and return (SIGTERM/SIGINT when run by the CLI)."""
        self._stop = True

    def run(self) -> StreamStats:
        """Consume until :meth:`stop`, ``max_messages`` committed, or ``idle_exit_s`` without a message."""
        start = time.monotonic()
        self._consumer.subscribe(list(self.config.topics), on_assign=self._assigned)
        log.info(
            "stream: consuming %s (group %s) -> %s", ",".join(self.config.topics), self.config.group, self.lake.root
        )
        last = time.monotonic()
        try:
            while not self._stop:
                took = self.step()
                if self.config.heartbeat_file is not None:
                    self.config.heartbeat_file.touch()
                now = time.monotonic()
                if took:
                    last = now
                if self.config.max_messages is not None and self.stats.messages >= self.config.max_messages:
                    break
                if not self._has_partitions:
                    last = now  # idle time counts from the group's assignment, not from joining it
                elif self.config.idle_exit_s is not None and now - last >= self.config.idle_exit_s:
                    break
        finally:
            self._consumer.close()
            if self.publisher is not None:
                self.publisher.close()
        self.stats.seconds = round(time.monotonic() - start, 3)
        return self.stats


def run_until_signal(consumer: StreamConsumer) -> StreamStats:
    """Run ``consumer`` in this process; SIGTERM or SIGINT finish the batch in hand, commit and return."""
    signal.signal(signal.SIGTERM, consumer.stop)
    signal.signal(signal.SIGINT, consumer.stop)
    return consumer.run()
