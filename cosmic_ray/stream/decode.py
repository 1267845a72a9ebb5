"""Kafka message values -> the batch parser, by format: a ZTF packet is an Avro container file
(``Obj\\x01``), a Rubin packet is the Confluent wire format (magic byte 0, a 4-byte schema id, then
the Avro body). Anything else is quarantined with the reason, as batch ingest does.

Both go through :func:`cosmic_ray.ingest.batch.parse_inputs` (the parser, the pre-filters and
the quarantine of ``cosmic-ray ingest``), so the stream writes exactly the lake rows that batch
ingest writes for the same packets. Rubin packets go to :mod:`cosmic_ray.sources.lsst` (schemas and
ids of ``lsst-alert-packet``); an unknown schema id is quarantined with the ids that are known.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from cosmic_ray.ingest import quarantine
from cosmic_ray.ingest.batch import ParsedBatch, merge_batches, parse_inputs
from cosmic_ray.ingest.prefilter import PrefilterConfig

log = logging.getLogger(__name__)

AVRO_CONTAINER_MAGIC = b"Obj\x01"
CONFLUENT_MAGIC = 0


@dataclass
class Message:
    """One Kafka message the consumer took: where it came from and its value."""

    topic: str
    partition: int
    offset: int
    value: bytes
    timestamp_ms: int = 0  # the producer's create time (latency figures)

    @property
    def name(self) -> str:
        """How quarantine files and logs name it (``kafka:<topic>[<partition>]@<offset>``)."""
        return f"kafka:{self.topic}[{self.partition}]@{self.offset}"


@dataclass
class Sorted:
    """A batch's messages by format; ``refused`` are ``(message, reason)`` pairs."""

    ztf: list[Message] = field(default_factory=list)
    lsst: list[Message] = field(default_factory=list)
    refused: list[tuple[Message, str]] = field(default_factory=list)


def kind_of(value: bytes) -> str:
    """``"ztf"`` (Avro container), ``"lsst"`` (Confluent wire format) or ``"unknown"``."""
    if value.startswith(AVRO_CONTAINER_MAGIC):
        return "ztf"
    if len(value) > 5 and value[0] == CONFLUENT_MAGIC:
        return "lsst"
    return "unknown"


def sort_messages(messages: list[Message]) -> Sorted:
    """Split messages by format; empty and unrecognised ones are refused with the reason."""
    out = Sorted()
    for message in messages:
        kind = kind_of(message.value)
        if kind == "ztf":
            out.ztf.append(message)
        elif kind == "lsst":
            out.lsst.append(message)
        elif not message.value:
            out.refused.append((message, "empty message: no alert"))
        else:
            head = message.value[:8].hex()
            out.refused.append(
                (
                    message,
                    f"neither an Avro container (ZTF, 'Obj\\x01') nor the Confluent wire format "
                    f"(Rubin: magic byte 0 + schema id): starts with 0x{head}",
                )
            )
    return out


def _parse(
    source: str, messages: list[Message], quarantine_dir: Path, run_id: str, cfg: PrefilterConfig
) -> ParsedBatch:
    """One source's messages parsed as one batch; if the parser fails on it, message by message."""
    items = [(m.name, m.value) for m in messages]
    try:
        return parse_inputs(source, items, quarantine_dir, run_id, cfg)
    except Exception as exc:  # noqa: BLE001 - find the message(s) it fails on; the stream goes on
        log.warning("stream: %s batch parse failed (%s: %s): message by message", source, type(exc).__name__, exc)
    parts, failed = [], 0
    for name, data in items:
        try:
            parts.append(parse_inputs(source, [(name, data)], quarantine_dir, run_id, cfg))
        except Exception as exc:  # noqa: BLE001 - this message is quarantined, the rest go on
            quarantine.quarantine(
                quarantine_dir, name, f"parser failed: {type(exc).__name__}: {exc}"[:500], data, run_id
            )
            failed += 1
    batch = merge_batches(parts)
    batch.quarantined += failed
    return batch


def parse_messages(
    messages: list[Message], quarantine_dir: Path, run_id: str, cfg: PrefilterConfig | None = None
) -> ParsedBatch:
    """Messages -> lake points and per-alert rows (pre-filter decisions); bad ones quarantined.

    Args:
        messages: the batch, any mix of formats.
        quarantine_dir: where refused messages go (bytes + reason).
        run_id: prefix of this batch's quarantine files.
        cfg: pre-filter thresholds.
    """
    cfg = cfg or PrefilterConfig()
    sorted_ = sort_messages(messages)
    for message, reason in sorted_.refused:
        quarantine.quarantine(quarantine_dir, message.name, reason, message.value, run_id)
    parts = []
    refused = len(sorted_.refused)
    if sorted_.ztf:
        parts.append(_parse("ztf", sorted_.ztf, quarantine_dir, run_id, cfg))
    if sorted_.lsst:
        parts.append(_parse("lsst", sorted_.lsst, quarantine_dir, run_id, cfg))
    batch = merge_batches(parts)
    batch.quarantined += refused
    return batch
