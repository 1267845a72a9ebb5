"""Classified alerts out on a topic of their own (``cosmic-ray stream --publish TOPIC``), so other
tools can subscribe: one Avro container file per message (the schema travels with it, as in ZTF's
stream; :data:`SCHEMA_FILE` is the same schema), keyed by the alert's candid.

Delivery is at least once: the consumer publishes a batch (and waits for the broker's
acknowledgements) before it stores the batch and commits its offsets, so a consumer killed in
between publishes that batch again after its restart. Subscribers deduplicate by ``candid``.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import fastavro
from confluent_kafka import Producer

log = logging.getLogger(__name__)

SCHEMA_FILE = "classification.avsc"


class PublishError(RuntimeError):
    """The broker did not acknowledge every published record (the batch is not committed)."""


@functools.lru_cache(maxsize=1)
def schema() -> Any:
    """The parsed Avro schema of a published classification."""
    text = importlib.resources.files("cosmic_ray.stream").joinpath(SCHEMA_FILE).read_text()
    return fastavro.parse_schema(json.loads(text))


def to_record(row: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """A classification row of the live path -> a record of :func:`schema`."""
    return {
        "object_id": str(row["object_id"]),
        "candid": int(row["candid"]),
        "class": str(row["class"]),
        "probabilities": {str(k): float(v) for k, v in row["probabilities"].items()},
        "open_set_score": float(row["open_set_score"]),
        "novel": bool(row["novel"]),
        "rare": bool(row["rare"]),
        "model_version": str(row["model_version"]),
        "classified_at": row.get("classified_at") or now or datetime.now(UTC),
    }


def encode(row: Mapping[str, Any]) -> bytes:
    """One classification as an Avro container file (readable with ``fastavro.reader``)."""
    out = io.BytesIO()
    fastavro.writer(out, schema(), [to_record(row)])
    return out.getvalue()


def decode(value: bytes) -> list[dict[str, Any]]:
    """The records of a published message (what a subscriber does)."""
    return list(fastavro.reader(io.BytesIO(value)))  # type: ignore[arg-type]  # records are dicts here


class Publisher:
    """Produce classification records to ``topic`` and wait for the broker's acknowledgements."""

    def __init__(self, conf: Mapping[str, Any], topic: str, timeout: float = 30.0):
        self.topic = topic
        self.timeout = timeout
        self._producer = Producer(dict(conf))
        self.published = 0

    def publish(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Send each row and wait until all are acknowledged; returns how many.

        Raises:
            PublishError: a record was refused or not acknowledged within ``timeout``.
        """
        failures: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        n = 0
        for row in rows:
            self._producer.produce(self.topic, encode(row), key=str(int(row["candid"])), on_delivery=delivered)
            self._producer.poll(0)
            n += 1
        left = self._producer.flush(self.timeout)
        if left or failures:
            raise PublishError(f"{left} record(s) not acknowledged, {len(failures)} refused: {failures[:3]}")
        self.published += n
        return n

    def close(self) -> None:
        self._producer.flush(self.timeout)
