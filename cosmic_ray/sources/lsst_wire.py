"""Rubin alert framing: the schema versions ``lsst-alert-packet`` ships, and the Confluent wire format.

Rubin sends each alert to Kafka as one message in the Confluent wire format: a zero magic byte,
the 4-byte big-endian schema id, then the alert as schemaless Avro (``ap_association``'s
``PackageAlertsTask._serializeAlert``). The schema id is the package's own numbering,
:meth:`lsst.alert.packet.Schema.get_schema_id`: major and zero-padded minor version run together
(``lsst.v7_3.alert`` is 703, ``lsst.v11_1.alert`` is 1101). Kafka-level compression (Rubin's
producer uses ``compression.type=snappy``) is undone by the Kafka client, not here; Avro container
files that use the snappy codec are read by :mod:`cosmic_ray.sources.avro`.

Every schema version the installed package ships is known (its schema folders are walked once,
on first use, never at import).
"""

from __future__ import annotations

import functools
import io
import logging
import re
import struct
from dataclasses import dataclass
from typing import Any

import fastavro

from cosmic_ray.core.errors import BadAlertError

log = logging.getLogger(__name__)

MAGIC = 0
HEADER = struct.Struct(">bi")  # magic byte, schema id (as Rubin packs it)
_NAME = re.compile(r"^lsst\.v(\d+)_(\d+)\.alert$")


class UnknownSchemaError(BadAlertError):
    """A message names a schema id that no shipped ``lsst-alert-packet`` schema has."""


@dataclass(frozen=True)
class AlertSchema:
    """One shipped alert schema: its registry id, version (``"11.1"``) and parsed definition."""

    schema_id: int
    version: str
    parsed: Any

    @property
    def name(self) -> str:
        """The schema's record name, e.g. ``lsst.v11_1.alert`` (kept in the lake's ``schemavsn``)."""
        major, minor = self.version.split(".")
        return f"lsst.v{major}_{minor}.alert"


def schema_id_of(name: str) -> int | None:
    """The package's schema id of an alert schema name (``lsst.v7_3.alert`` -> 703); None if not one."""
    match = _NAME.match(name)
    if match is None:
        return None
    return int(match.group(1) + match.group(2).zfill(2))


@functools.lru_cache(maxsize=1)
def shipped_schemas() -> dict[int, AlertSchema]:
    """Every alert schema the installed ``lsst-alert-packet`` ships, by schema id (loaded once)."""
    # deferred: the package walks and parses ~15 schema folders (~0.3 s); only LSST input needs it
    from lsst.alert.packet import SchemaRegistry

    registry = SchemaRegistry.all_schemas_from_filesystem()
    out: dict[int, AlertSchema] = {}
    for version in sorted(registry.known_versions):
        schema = registry.get_by_version(version)
        schema_id = schema.get_schema_id()
        out[schema_id] = AlertSchema(schema_id, version, fastavro.parse_schema(schema.definition))
    log.debug("lsst-alert-packet schemas: %s", sorted(out))
    return out


def frame(schema_id: int, payload: bytes) -> bytes:
    """A Confluent wire-format message: the 5-byte header, then the schemaless Avro ``payload``."""
    return HEADER.pack(MAGIC, schema_id) + payload


def encode_confluent(record: dict[str, Any], schema_id: int) -> bytes:
    """An alert record as Rubin sends it (the shipped schema ``schema_id``, Confluent framing).

    Raises:
        UnknownSchemaError: no shipped schema has that id.
    """
    schema = _schema(schema_id)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema.parsed, record)
    return frame(schema_id, buf.getvalue())


def _schema(schema_id: int) -> AlertSchema:
    schemas = shipped_schemas()
    try:
        return schemas[schema_id]
    except KeyError:
        known = ", ".join(str(i) for i in sorted(schemas))
        raise UnknownSchemaError(
            f"unknown Rubin alert schema id {schema_id}: lsst-alert-packet ships {known}; "
            "upgrade lsst-alert-packet if Rubin published a newer schema"
        ) from None


def decode_confluent(message: bytes) -> tuple[int, dict[str, Any]]:
    """A Kafka message of the Rubin alert stream -> (schema id, decoded alert record).

    Raises:
        UnknownSchemaError: the header names a schema id no shipped schema has.
        BadAlertError: not Confluent-framed (too short, magic byte not 0), or the payload does not
            decode with its schema (truncated, corrupt, trailing bytes).
    """
    data = bytes(message)
    if len(data) < HEADER.size:
        raise BadAlertError(f"message of {len(data)} bytes is shorter than the 5-byte Confluent header")
    magic, schema_id = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BadAlertError(f"magic byte {magic} is not 0: not a Confluent wire-format message")
    schema = _schema(schema_id)
    payload = io.BytesIO(data[HEADER.size :])
    try:
        record = fastavro.schemaless_reader(payload, schema.parsed, None)
    except Exception as exc:  # fastavro raises several unrelated types on corrupt input
        raise BadAlertError(
            f"payload does not decode with schema {schema_id} ({schema.name}): {type(exc).__name__}: {exc}"
        ) from exc
    rest = len(data) - HEADER.size - payload.tell()
    if rest:
        raise BadAlertError(f"payload has {rest} bytes after the alert record of schema {schema_id}: corrupt")
    if not isinstance(record, dict):
        raise BadAlertError(f"schema {schema_id} decoded to a {type(record).__name__}, not an alert record")
    return schema_id, record
