"""Rubin alerts over Kafka: Confluent wire format in, each diaSourceId exactly once in the lake,
across a consumer SIGKILLed mid-stream and restarted.

The packets are SIMULATED: the sample alerts that ``lsst-alert-packet`` ships (schemas 8.0 and
later carry MJDs; earlier samples carry Unix seconds and are refused by the parser), each copied
with fresh diaObjectId / diaSourceId values so the stream carries many distinct alerts. Formats
only: no quality figure comes from them.
"""

from __future__ import annotations

import copy
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import fastavro
import pyarrow.compute as pc
from confluent_kafka import Consumer, TopicPartition
from lsst.alert.packet import get_schema_root

from cosmic_ray.ingest.lake import Lake
from cosmic_ray.sources.lsst_wire import encode_confluent, schema_id_of
from cosmic_ray.stream.broker import ensure_topics
from cosmic_ray.stream.replay import produce

REPO = Path(__file__).resolve().parents[2]
COPIES = 12  # per shipped sample: 5+ schemas x 12 = 60+ messages


def _simulated_rubin_messages() -> tuple[list[bytes], set[int]]:
    """Confluent-framed SIMULATED alerts and the diaSourceIds of every detection they carry."""
    messages: list[bytes] = []
    expected: set[int] = set()
    for path in sorted(Path(str(get_schema_root())).glob("*/*/sample_data/fakeAlert.avro")):
        schema_id = schema_id_of(f"lsst.v{path.parents[2].name}_{path.parents[1].name}.alert")
        [packet] = list(fastavro.reader(io.BytesIO(path.read_bytes())))
        source = packet["diaSource"]
        if schema_id is None or source.get("midpointMjdTai", 1e9) > 200_000:
            continue  # the older samples carry Unix seconds where an MJD belongs
        for copy_no in range(COPIES):
            alert = copy.deepcopy(packet)
            offset = (schema_id * 1000 + copy_no + 1) * 1_000_000
            for item in [alert["diaSource"], *(alert.get("prvDiaSources") or [])]:
                item["diaSourceId"] += offset
                item["diaObjectId"] = offset
                expected.add(item["diaSourceId"])
            if alert.get("diaObject"):
                alert["diaObject"]["diaObjectId"] = offset
            for forced in alert.get("prvDiaForcedSources") or []:
                forced["diaForcedSourceId"] += offset
                forced["diaObjectId"] = offset
            if "alertId" in alert:
                alert["alertId"] += offset
            messages.append(encode_confluent(alert, schema_id))
    return messages, expected


def _committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return tp.offset
    finally:
        consumer.close()


def _cmd(bootstrap: str, topic: str, group: str, *extra: str) -> list[str]:
    cli = [sys.executable, "-m", "cosmic_ray.ops.cli", "stream"]
    return [*cli, "--bootstrap", bootstrap, "--topic", topic, "--group", group, *extra]


def test_rubin_alerts_over_kafka_land_once_each_across_a_sigkill_simulated(kafka_broker, tmp_path):
    messages, expected = _simulated_rubin_messages()
    assert len(messages) >= 5 * COPIES and len(expected) >= len(messages)
    topic, group, home = f"rubin-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}", tmp_path / "home"
    ensure_topics(kafka_broker, [topic])
    produce({"bootstrap.servers": kafka_broker}, topic, messages)
    env = {**os.environ, "COSMIC_RAY_HOME": str(home), "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    first = subprocess.Popen(
        _cmd(kafka_broker, topic, group, "--batch-size", "4"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 90
    try:
        while len(list((home / "lake").rglob("part-*.parquet"))) < 2:
            assert first.poll() is None, first.stderr.read().decode()[-2000:] if first.stderr else ""
            assert time.monotonic() < deadline, "the consumer wrote nothing in time"
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    done_before = max(_committed(kafka_broker, group, topic), 0)
    assert done_before < len(messages)  # killed mid-stream
    second = subprocess.run(
        _cmd(kafka_broker, topic, group, "--batch-size", "16", "--max-messages", str(len(messages) - done_before)),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    stats = json.loads(second.stdout.strip().splitlines()[-1])
    assert stats["messages"] == len(messages) - done_before and stats["quarantined"] == 0
    assert _committed(kafka_broker, group, topic) == len(messages)
    rows = Lake(home / "lake").read()
    detections = rows.filter(pc.equal(rows.column("source"), "lsst_alert"))
    ids = detections.column("candid").to_pylist()  # the candid column carries diaSourceId for Rubin rows
    assert len(ids) == len(set(ids)), "a diaSourceId was written twice"
    assert set(ids) == expected, "a diaSourceId was lost"
    assert set(detections.column("time_scale").to_pylist()) == {"tai"}
    assert set(detections.column("band").to_pylist()) <= {"u", "g", "r", "i", "z", "y"}
