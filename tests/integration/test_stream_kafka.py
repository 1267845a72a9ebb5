"""The Kafka stream consumer against a real Kafka-protocol broker (tansu on loopback, the
``kafka_broker`` fixture) and the real ZTF packets of every schema version: the lake rows equal
batch ingest's, poison messages are quarantined while the rest goes on, a consumer SIGKILLed
mid-stream and restarted loses and doubles nothing, SIGTERM commits the batch in hand and exits 0.
No Ray here (the classify path is tests/integration/test_stream_classify.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from confluent_kafka import Consumer, TopicPartition

from cosmic_ray.core.config import Settings
from cosmic_ray.ingest import quarantine
from cosmic_ray.ingest.batch import parse_inputs
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.stream.broker import ensure_topics
from cosmic_ray.stream.consumer import StreamConfig
from cosmic_ray.stream.replay import packet_files, produce, replay_files
from cosmic_ray.stream.run import build_consumer

REPO = Path(__file__).resolve().parents[2]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def packets(shared_data) -> list[Path]:
    """Every real ZTF packet of the shared data (schema 2.0 to 4.02, plus the foreign DECam alert)."""
    files = packet_files([shared_data / "ztf-alerts"])
    versions = {p.parent.name for p in files}
    assert len(files) > 90 and len(versions) >= 5, versions
    return files


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by(
        [(c, "ascending") for c in table.column_names if not pa.types.is_nested(table.schema.field(c).type)]
    )


def _reference_lake(files: list[Path], root: Path) -> Lake:
    """What `cosmic-ray ingest ztf` stores for ``files``: its per-block parse and the driver's appends."""
    lake = Lake(root / "lake")
    parsed = parse_inputs("ztf", [(str(p), None) for p in files], root / "quarantine", "ref")
    lake.append(parsed.points, defer=True)
    assert parsed.alerts is not None
    lake.append_alerts(parsed.alerts, defer=True)
    lake.flush()
    return lake


def _assert_same_lake(lake: Lake, reference: Lake) -> None:
    got, want = lake.read(), reference.read()
    assert got.num_rows == want.num_rows > 0
    assert _sorted(got).equals(_sorted(want))
    got_alerts, want_alerts = lake.read_alerts(), reference.read_alerts()
    assert got_alerts.num_rows == want_alerts.num_rows > 0
    candids = got_alerts.column("alert_candid").to_pylist()
    assert len(candids) == len(set(candids))  # every alert exactly once
    assert _sorted(got_alerts.select(want_alerts.column_names)).equals(_sorted(want_alerts))


def _committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return tp.offset
    finally:
        consumer.close()


def test_the_stream_writes_the_lake_rows_of_batch_ingest(kafka_broker, packets, tmp_path):
    topic = _name("ztf")
    ensure_topics(kafka_broker, [topic])
    assert replay_files({"bootstrap.servers": kafka_broker}, topic, packets) == len(packets)
    settings = Settings(home=tmp_path / "home")
    config = StreamConfig((topic,), group=_name("g"), batch_size=25, max_messages=len(packets))
    stats = build_consumer(settings, kafka_broker, config).run()
    assert stats.messages == len(packets)
    assert stats.last_offsets == {f"{topic}[0]": len(packets)}
    reference = _reference_lake(packets, tmp_path / "ref")
    _assert_same_lake(Lake(settings.lake_dir), reference)
    # every alert's object has its context row (position, PS1 host), as batch ingest writes it
    context = Lake(settings.lake_dir).read_context()
    alert_objects = set(reference.read_alerts().column("object_id").to_pylist())
    assert set(context.column("object_id").to_pylist()) == alert_objects
    assert all(-90 <= b <= 90 for b in context.column("gal_b").to_pylist() if b is not None)
    # the foreign-schema (DECam) packet is quarantined by both, with the same reason
    reasons = [r["reason"] for r in quarantine.reasons(settings.quarantine_dir)]
    want = [r["reason"] for r in quarantine.reasons(tmp_path / "ref" / "quarantine")]
    assert sorted(reasons) == sorted(want) and len(want) >= 1
    assert stats.quarantined == len(want)


def test_poison_messages_are_quarantined_and_the_consumer_goes_on(kafka_broker, packets, tmp_path):
    topic = _name("poison")
    ensure_topics(kafka_broker, [topic])
    good = [p for p in packets if "alerts-for-testing" in str(p)][:6]
    values = [good[0].read_bytes(), b"Obj\x01not really avro", b"\x07plain garbage", b""]
    # Rubin's Confluent wire format: magic byte 0, schema id 999999 (registered nowhere), a body
    values += [b"\x00" + (999_999).to_bytes(4, "big") + b"\x02\x04body", *[p.read_bytes() for p in good[1:]]]
    produce({"bootstrap.servers": kafka_broker}, topic, values)
    settings = Settings(home=tmp_path / "home")
    config = StreamConfig((topic,), group=_name("g"), batch_size=3, max_messages=len(values))
    stats = build_consumer(settings, kafka_broker, config).run()
    assert stats.messages == len(values) and stats.alerts == len(good)
    assert stats.last_offsets == {f"{topic}[0]": len(values)}  # committed past the poison
    reasons = {r["input"]: r["reason"] for r in quarantine.reasons(settings.quarantine_dir)}
    assert len(reasons) == 4 and stats.quarantined == 4
    assert "Avro" in reasons[f"kafka:{topic}[0]@1"]
    assert "neither an Avro container" in reasons[f"kafka:{topic}[0]@2"]
    assert "empty" in reasons[f"kafka:{topic}[0]@3"]
    rubin = reasons[f"kafka:{topic}[0]@4"]
    assert "unknown Rubin alert schema id 999999" in rubin  # Rubin framing, an id lsst-alert-packet lacks
    # the bytes are kept beside the reasons
    kept = sorted(p.stat().st_size for p in settings.quarantine_dir.glob("*.bin"))
    assert len(kept) == 4 and kept[0] == 0 and kept[1] > 0  # the empty message too, as an empty file
    alerts = Lake(settings.lake_dir).read_alerts()
    assert alerts.num_rows == len(good)


def _stream_cmd(bootstrap: str, topic: str, group: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cosmic_ray.ops.cli",
        "stream",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--group",
        group,
        *extra,
    ]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "COSMIC_RAY_HOME": str(home), "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}


def _wait_for_lake_files(lake: Path, proc: subprocess.Popen, n: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the consumer ended early: {proc.returncode}")
        if len(list(lake.rglob("part-*.parquet"))) >= n:
            return
        time.sleep(0.05)
    raise AssertionError("the consumer wrote nothing in time")


def test_a_consumer_sigkilled_mid_stream_and_restarted_loses_and_doubles_nothing(kafka_broker, packets, tmp_path):
    topic, group, home = _name("kill"), _name("g"), tmp_path / "home"
    ensure_topics(kafka_broker, [topic])
    replay_files({"bootstrap.servers": kafka_broker}, topic, packets)
    lake = home / "lake"
    first = subprocess.Popen(
        _stream_cmd(kafka_broker, topic, group, "--batch-size", "4"),
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_lake_files(lake, first, n=3)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    done_before = _committed(kafka_broker, group, topic)
    assert done_before < len(packets)  # killed mid-stream
    left = len(packets) - max(done_before, 0)
    second = subprocess.run(
        _stream_cmd(kafka_broker, topic, group, "--batch-size", "16", "--max-messages", str(left)),
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    stats = json.loads(second.stdout.strip().splitlines()[-1])
    # the restart read from the committed offset on, not from the beginning
    assert stats["messages"] == left
    assert _committed(kafka_broker, group, topic) == len(packets)
    _assert_same_lake(Lake(lake), _reference_lake(packets, tmp_path / "ref"))


def test_sigterm_finishes_the_batch_in_hand_commits_and_exits_0(kafka_broker, packets, tmp_path):
    topic, group, home = _name("term"), _name("g"), tmp_path / "home"
    ensure_topics(kafka_broker, [topic])
    replay_files({"bootstrap.servers": kafka_broker}, topic, packets)
    proc = subprocess.Popen(
        _stream_cmd(kafka_broker, topic, group, "--batch-size", "4"),
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        _wait_for_lake_files(home / "lake", proc, n=2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    stats = json.loads(out.strip().splitlines()[-1])
    assert 0 < stats["messages"] <= len(packets)
    # what it consumed is committed, and exactly that: a restart starts right after it
    assert _committed(kafka_broker, group, topic) == stats["messages"] == stats["last_offsets"][f"{topic}[0]"]
    alerts = Lake(home / "lake").read_alerts()
    assert alerts.num_rows == stats["alerts"] > 0  # every consumed alert is in the lake
