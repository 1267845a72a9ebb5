"""Avro container files (the ZTF alert packet format) -> decoded records, fast and strict.

The container is walked with fastavro's own header schema and record decoder; the writer schema
is parsed once per distinct schema text and cached (parsing the ~23 KB ZTF schema costs more
than decoding the alert itself). Codecs other than null/deflate go through ``fastavro.reader``.
"""

from __future__ import annotations

import functools
import io
import json
import zlib
from typing import Any

import fastavro
import fastavro.read as _avro_read

from cosmic_ray.core.errors import BadAlertError

_HEADER = fastavro.parse_schema(_avro_read.HEADER_SCHEMA)
_LONG = fastavro.parse_schema({"type": "long"})


def read_records(data: bytes) -> list[Any]:
    """Decode an Avro container file's values (records, for ZTF alerts: checking them is the caller's job).

    Raises:
        BadAlertError: the bytes are not a readable Avro container.
    """
    try:
        return _read_container(data)
    except BadAlertError:
        raise
    except Exception as exc:  # fastavro raises several unrelated types on corrupt input
        raise BadAlertError(f"not a readable Avro container: {type(exc).__name__}: {exc}") from exc


@functools.lru_cache(maxsize=32)
def _writer_schema(text: str) -> Any:
    return fastavro.parse_schema(json.loads(text))


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


def _read_container(data: bytes) -> list[Any]:
    fo = io.BytesIO(data)
    header = _record(fastavro.schemaless_reader(fo, _HEADER, None))
    if header["magic"] != _avro_read.MAGIC:
        raise BadAlertError("not a readable Avro container: bad magic bytes")
    meta = _record(header["meta"])
    codec = _text(meta.get("avro.codec", b"null"))
    if codec not in ("null", "deflate"):
        return list(fastavro.reader(io.BytesIO(data)))
    schema = _writer_schema(_text(meta["avro.schema"]))
    sync = header["sync"]
    records: list[Any] = []
    end = len(data)
    while fo.tell() < end:
        count = _long(fo)
        size = _long(fo)
        block = fo
        if codec == "deflate":
            block = io.BytesIO(zlib.decompress(fo.read(size), -15))
        start = fo.tell()
        for _ in range(count):
            records.append(fastavro.schemaless_reader(block, schema, None))
        if codec == "null" and fo.tell() - start != size:
            raise BadAlertError(f"not a readable Avro container: block of {size} bytes decoded to {fo.tell() - start}")
        if fo.read(_avro_read.SYNC_SIZE) != sync:
            raise BadAlertError("not a readable Avro container: sync marker mismatch (truncated or corrupt)")
    return records
