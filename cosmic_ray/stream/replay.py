"""Replay alert packets into a topic: each ``.avro`` file's bytes as one message (ZTF's stream
sends one Avro container per alert), in name order. Used by the demo, the tests and the benchmarks."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

log = logging.getLogger(__name__)


def packet_files(folders: Iterable[Path | str]) -> list[Path]:
    """Every ``*.avro`` file under ``folders``, sorted by path (a folder may also be a file)."""
    found: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        found.extend([folder] if folder.is_file() else sorted(folder.rglob("*.avro")))
    return found


def produce(conf: Mapping[str, Any], topic: str, values: Iterable[bytes], timeout: float = 60.0) -> int:
    """Send each value as one message and wait for every acknowledgement; returns how many were sent.

    Raises:
        RuntimeError: some message was not acknowledged within ``timeout``.
    """
    producer = Producer({"linger.ms": 20, "batch.num.messages": 10_000, **dict(conf)})
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    n = 0
    for value in values:
        while True:
            try:
                producer.produce(topic, value, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.1)
        producer.poll(0)
        n += 1
    left = producer.flush(timeout)
    if left or failures:
        raise RuntimeError(f"replay to {topic}: {left} message(s) not acknowledged, {len(failures)} refused")
    log.info("replayed %d messages into %s", n, topic)
    return n


def replay_files(conf: Mapping[str, Any], topic: str, files: Iterable[Path]) -> int:
    """Produce each file's bytes as one message (see :func:`produce`)."""
    return produce(conf, topic, (Path(f).read_bytes() for f in files))
