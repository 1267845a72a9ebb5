"""Decompression with a size bound: a few compressed bytes never become gigabytes in memory.

Every reader that inflates input it did not write (Avro deflate blocks, gzipped FITS and CSV
files, tarball members) goes through these helpers. The bound is the setting
``COSMIC_RAY_MAX_DECOMPRESSED_BYTES`` (:attr:`cosmic_ray.core.config.Settings.max_decompressed_bytes`,
default 256 MiB), read when a helper is called so a running worker follows its environment.
Output beyond the bound raises :class:`DecompressionLimitError` (a :class:`BadAlertError`: the
input is quarantined with that reason, the rest of the batch goes on).
"""

from __future__ import annotations

import os
import zlib
from typing import IO

from cosmic_ray.core.errors import BadAlertError

ENV = "COSMIC_RAY_MAX_DECOMPRESSED_BYTES"
DEFAULT_LIMIT = 256 * 1024 * 1024
_CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


class DecompressionLimitError(BadAlertError):
    """An input inflates (or declares it inflates) beyond the decompression bound."""


def max_decompressed_bytes() -> int:
    """The bound in bytes: ``$COSMIC_RAY_MAX_DECOMPRESSED_BYTES`` or :data:`DEFAULT_LIMIT`."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        return DEFAULT_LIMIT
    return limit if limit > 0 else DEFAULT_LIMIT


def _limit(limit: int | None) -> int:
    return max_decompressed_bytes() if limit is None else limit


def _too_big(what: str, limit: int) -> DecompressionLimitError:
    return DecompressionLimitError(f"{what} inflates beyond {limit} bytes (the decompression bound {ENV}): refused")


def inflate(data: bytes, wbits: int, what: str = "compressed data", limit: int | None = None) -> bytes:
    """``zlib`` inflate of ``data`` (``wbits`` as :func:`zlib.decompressobj`), at most ``limit`` bytes out.

    Raises:
        DecompressionLimitError: the output would exceed the bound.
        zlib.error: the data is not a valid stream.
    """
    bound = _limit(limit)
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(data, bound + 1)
    if len(out) > bound or inflater.unconsumed_tail:
        raise _too_big(what, bound)
    return out


def unsnappy_avro_block(data: bytes, what: str = "Avro snappy block", limit: int | None = None) -> bytes:
    """An Avro ``snappy`` block (raw snappy, then the big-endian CRC32 of the output), at most ``limit`` bytes.

    The declared length is read from the snappy preamble before anything is decompressed
    (``cramjam``, the library fastavro uses for this codec).

    Raises:
        DecompressionLimitError: the declared or actual output exceeds the bound.
        ValueError: corrupt snappy data or a checksum mismatch.
    """
    # deferred: cramjam is only needed for snappy-coded containers
    import cramjam

    bound = _limit(limit)
    if len(data) < 4:
        raise ValueError(f"{what}: {len(data)} bytes, shorter than its checksum")
    body, crc = data[:-4], data[-4:]
    try:
        declared = cramjam.snappy.decompress_raw_len(body)
        if declared > bound:
            raise _too_big(what, bound)
        out = bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise ValueError(f"{what}: corrupt snappy data: {exc}") from exc
    if len(out) > bound:
        raise _too_big(what, bound)
    if zlib.crc32(out).to_bytes(4, "big") != crc:
        raise ValueError(f"{what}: CRC32 mismatch (corrupt block)")
    return out


def gunzip(data: bytes, what: str = "gzip data", limit: int | None = None) -> bytes:
    """Every member of a gzip stream, concatenated (as :func:`gzip.decompress`), at most ``limit`` bytes.

    Raises:
        DecompressionLimitError: the output would exceed the bound.
        OSError: not a gzip stream, or truncated.
    """
    bound = _limit(limit)
    parts: list[bytes] = []
    total = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(31)
        try:
            part = inflater.decompress(rest, bound - total + 1)
        except zlib.error as exc:
            raise OSError(f"corrupt gzip: {exc}") from exc
        total += len(part)
        if total > bound or inflater.unconsumed_tail:
            raise _too_big(what, bound)
        if not inflater.eof:
            raise OSError("truncated gzip stream")
        parts.append(part)
        rest = inflater.unused_data.lstrip(b"\x00")  # trailing padding after the last member
    return b"".join(parts)


def maybe_gunzip(data: bytes, what: str = "gzip data", limit: int | None = None) -> bytes:
    """``data`` inflated if it starts with the gzip magic bytes, else unchanged."""
    return gunzip(data, what, limit) if data[:2] == GZIP_MAGIC else data


def read_bounded(handle: IO[bytes], what: str = "archive member", limit: int | None = None) -> bytes:
    """All of ``handle`` read in chunks, refusing more than ``limit`` bytes.

    Raises:
        DecompressionLimitError: the stream holds more than the bound.
    """
    bound = _limit(limit)
    parts: list[bytes] = []
    total = 0
    while True:
        chunk = handle.read(min(_CHUNK, bound - total + 1))
        if not chunk:
            return b"".join(parts)
        total += len(chunk)
        if total > bound:
            raise _too_big(what, bound)
        parts.append(chunk)
