"""Avro container files (the ZTF alert packet format) -> decoded records, fast and strict.

The container is walked here (its header layout is the Avro specification's, "Object Container
Files") with fastavro's public API only: ``fastavro.parse_schema`` parses each distinct writer
schema once (cached by its text: ``fastavro.reader`` re-parses the ~23 KB ZTF schema for every
file) and ``fastavro.schemaless_reader`` decodes the header and each record.

Hostile containers are refused before anything is decoded: a writer schema that is not a record
(or lacks the fields the caller requires) is foreign; a block may not declare more records than it
has bytes (a record of a record schema with a required field takes at least one byte), so a
78-byte file cannot make millions of records; deflate blocks are inflated with the decompression
bound of :mod:`cosmic_ray.sources.bounded`, and so are snappy blocks (Avro's snappy codec, through
``cramjam``); other codecs are refused.
"""

from __future__ import annotations

import functools
import io
import json
import zlib
from collections.abc import Sequence
from typing import Any

import fastavro

from cosmic_ray.core.errors import BadAlertError
from cosmic_ray.sources.bounded import inflate, unsnappy_avro_block

# The object container header, as the Avro specification defines it (magic, metadata map, sync marker).
MAGIC = b"Obj\x01"
SYNC_SIZE = 16
_HEADER = fastavro.parse_schema(
    {
        "type": "record",
        "name": "org.apache.avro.file.Header",
        "fields": [
            {"name": "magic", "type": {"type": "fixed", "name": "Magic", "size": len(MAGIC)}},
            {"name": "meta", "type": {"type": "map", "values": "bytes"}},
            {"name": "sync", "type": {"type": "fixed", "name": "Sync", "size": SYNC_SIZE}},
        ],
    }
)
_LONG = fastavro.parse_schema({"type": "long"})
CODECS = ("null", "deflate", "snappy")


class ForeignSchemaError(BadAlertError):
    """The container's writer schema is not a record with the fields the caller requires."""


def read_records(data: bytes, required_fields: Sequence[str] = ()) -> list[Any]:
    """Decode an Avro container file's records (for ZTF alerts, checking their values is the caller's job).

    Args:
        data: the container file's bytes.
        required_fields: top-level fields the writer schema must declare (a schema without them
            is foreign and refused before any record is decoded).

    Raises:
        BadAlertError: the bytes are not a readable Avro container, the writer schema is foreign,
            a block declares more records than it has bytes, or a block inflates beyond the bound.
    """
    try:
        return _read_container(data, tuple(required_fields))
    except BadAlertError:
        raise
    except Exception as exc:  # fastavro raises several unrelated types on corrupt input
        raise BadAlertError(f"not a readable Avro container: {type(exc).__name__}: {exc}") from exc


@functools.lru_cache(maxsize=32)
def _writer_schema(text: str, required_fields: tuple[str, ...]) -> Any:
    declared = json.loads(text)
    if not isinstance(declared, dict) or declared.get("type") != "record":
        kind = declared.get("type") if isinstance(declared, dict) else declared
        raise ForeignSchemaError(f"foreign writer schema: a {str(kind)[:40]!r}, not a record: refused")
    names = {f.get("name") for f in declared.get("fields") or [] if isinstance(f, dict)}
    missing = [name for name in required_fields if name not in names]
    if missing or not names:
        raise ForeignSchemaError(
            f"foreign writer schema {str(declared.get('name'))[:60]!r}: no field {missing or ['(any)']}: refused"
        )
    return fastavro.parse_schema(declared)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _record(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadAlertError(f"not a readable Avro container: header field is a {type(value).__name__}")
    return value


def _long(fo: io.BytesIO) -> int:
    value = fastavro.schemaless_reader(fo, _LONG, None)
    if not isinstance(value, int):
        raise BadAlertError("not a readable Avro container: block header is not a long")
    return value


def _read_container(data: bytes, required_fields: tuple[str, ...]) -> list[Any]:
    fo = io.BytesIO(data)
    header = _record(fastavro.schemaless_reader(fo, _HEADER, None))
    if header["magic"] != MAGIC:
        raise BadAlertError("not a readable Avro container: bad magic bytes")
    meta = _record(header["meta"])
    codec = _text(meta.get("avro.codec", b"null"))
    if codec not in CODECS:
        raise BadAlertError(f"Avro codec {codec[:40]!r} is not accepted (only {', '.join(CODECS)})")
    schema = _writer_schema(_text(meta["avro.schema"]), required_fields)
    sync = header["sync"]
    records: list[Any] = []
    end = len(data)
    while fo.tell() < end:
        count = _long(fo)
        size = _long(fo)
        if size < 0 or size > end - fo.tell():
            raise BadAlertError(f"not a readable Avro container: block of {size} bytes, {end - fo.tell()} left")
        block = fo
        available = size
        if codec == "deflate":
            try:
                inflated = inflate(fo.read(size), -15, "Avro deflate block")
            except zlib.error as exc:
                raise BadAlertError(f"not a readable Avro container: corrupt deflate block: {exc}") from exc
            block, available = io.BytesIO(inflated), len(inflated)
        elif codec == "snappy":
            try:
                inflated = unsnappy_avro_block(fo.read(size))
            except ValueError as exc:
                raise BadAlertError(f"not a readable Avro container: {exc}") from exc
            block, available = io.BytesIO(inflated), len(inflated)
        if count < 0 or count > available:  # each record takes at least one byte (a record with fields)
            raise BadAlertError(f"not a readable Avro container: block declares {count} records in {available} bytes")
        start = fo.tell()
        for _ in range(count):
            records.append(fastavro.schemaless_reader(block, schema, None))
        if codec == "null" and fo.tell() - start != size:
            raise BadAlertError(f"not a readable Avro container: block of {size} bytes decoded to {fo.tell() - start}")
        if fo.read(SYNC_SIZE) != sync:
            raise BadAlertError("not a readable Avro container: sync marker mismatch (truncated or corrupt)")
    return records
