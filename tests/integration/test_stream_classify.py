"""Kafka -> lake -> the served model (a real Ray Serve app: the ``served`` fixture chain) -> the
event store, and the published topic of classifications: every alert that passes the
pre-filters is stored once, the topic carries one record per classified alert, and a second
pass over the same messages (a restart that lost its committed offsets) stores and publishes
nothing again."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from cosmic_ray.ingest import prefilter
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.stream import publish
from cosmic_ray.stream.broker import ensure_topics
from cosmic_ray.stream.consumer import StreamConfig
from cosmic_ray.stream.replay import packet_files, replay_files
from cosmic_ray.stream.run import build_consumer


def _published(bootstrap: str, topic: str, expect: int) -> list[dict]:
    """Every record on ``topic``, read from the beginning by assignment (no group join): at least
    ``expect`` of them, then until the topic stays quiet for 3 s (to see any extra one)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"sub-{uuid.uuid4().hex[:6]}"})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    records: list[dict] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(100, 3.0)
            if not batch and len(records) >= expect:
                break
            for m in batch:
                assert m.error() is None
                (record,) = publish.decode(m.value())
                assert m.key() == str(record["candid"]).encode()
                records.append(record)
    finally:
        consumer.close()
    return records


def test_streamed_alerts_are_classified_stored_and_published_once(
    served, kafka_broker, shared_data, settings, event_store, tmp_path
):
    files = packet_files([shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing"])[:30]
    topic, out = f"cls-{uuid.uuid4().hex[:6]}", f"out-{uuid.uuid4().hex[:6]}"
    ensure_topics(kafka_broker, [topic, out])
    replay_files({"bootstrap.servers": kafka_broker}, topic, files)
    lake_dir = tmp_path / "lake"
    config = StreamConfig((topic,), group=f"g-{uuid.uuid4().hex[:6]}", batch_size=8, max_messages=len(files))
    stats = build_consumer(settings, kafka_broker, config, lake_dir=lake_dir, classify=True, publish_topic=out).run()
    assert stats.messages == len(files) and stats.hook_failures == 0
    alerts = Lake(lake_dir).read_alerts()
    ok = prefilter.passed(alerts)
    passed = {int(c) for c, keep in zip(alerts["alert_candid"].to_pylist(), ok, strict=True) if keep}
    assert passed and stats.passed == len(passed)
    # every passed alert is in the store (other tests of the session may have stored some before)
    assert event_store.events.known_candids(passed) == passed
    records = _published(kafka_broker, out, stats.classified)
    assert len(records) == stats.classified == stats.published
    assert len({r["candid"] for r in records}) == len(records)  # one record per classified alert
    assert {r["candid"] for r in records} <= passed
    # the same messages again (a new group: as if no offset had been committed): nothing new
    again = StreamConfig((topic,), group=f"g-{uuid.uuid4().hex[:6]}", batch_size=8, max_messages=len(files))
    stats2 = build_consumer(settings, kafka_broker, again, lake_dir=lake_dir, classify=True, publish_topic=out).run()
    assert stats2.messages == len(files) and stats2.points == 0 and stats2.stored == 0 and stats2.published == 0
    assert len(_published(kafka_broker, out, len(records))) == len(records)


def test_the_demo_stream_mode_returns_once_every_replayed_alert_is_stored(served, shared_data, settings, event_store):
    from cosmic_ray.ops import demo_stream

    folder = shared_data / "ztf-alerts" / "pittgoogle" / "ZTF21abiuvdk_SN2021rhu_stream"
    result = demo_stream.run(settings, [folder])  # the embedded broker, started and stopped by the demo
    assert result.embedded_broker and result.replayed == result.consumed == len(packet_files([folder]))
    assert result.passed > 0 and result.stored == result.passed
    wanted = demo_stream.passed_candids(packet_files([folder]))
    assert event_store.events.known_candids(wanted) == wanted
