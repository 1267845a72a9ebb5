"""Hostile files (issue 18, item 5): foreign Avro writer schemas, record counts no bytes back, and
decompression bombs (Avro deflate blocks, gzipped FITS and CSV, tarball members, HTTP answers
with ``Content-Encoding: gzip``) are refused with a reason, within the decompression bound
(``COSMIC_RAY_MAX_DECOMPRESSED_BYTES``), never inflated whole.
"""

from __future__ import annotations

import gzip
import http.server
import io
import json
import os
import tarfile
import threading
import zlib
from collections.abc import Iterator

import fastavro
import httpx
import pytest
from fastavro.io.binary_encoder import BinaryEncoder

from cosmic_ray.core.errors import BadAlertError, SourceError
from cosmic_ray.sources import avro, catalog, tess, ztf
from cosmic_ray.sources.base import RawInput, http_answer

pytestmark = pytest.mark.timeout(60)
LIMIT = 1 << 20  # 1 MiB bound in these tests
BOMB = 16 << 20  # 16 MiB of zeros: ~16 KiB compressed


@pytest.fixture(autouse=True)
def _bound(monkeypatch):
    monkeypatch.setenv("COSMIC_RAY_MAX_DECOMPRESSED_BYTES", str(LIMIT))


def container(schema, count: int, block: bytes = b"", codec: str = "null") -> bytes:
    """An Avro container file whose one block declares ``count`` records over ``block``."""
    buf = io.BytesIO()
    enc = BinaryEncoder(buf)
    buf.write(b"Obj\x01")
    meta = {"avro.schema": json.dumps(schema).encode(), "avro.codec": codec.encode()}
    enc.write_long(len(meta))
    for key, value in meta.items():
        enc.write_utf8(key)
        enc.write_bytes(value)
    enc.write_long(0)
    sync = os.urandom(16)
    buf.write(sync)
    enc.write_long(count)
    enc.write_long(len(block))
    buf.write(block)
    buf.write(sync)
    return buf.getvalue()


def _zeros_gzip(n: int = BOMB) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6) as handle:
        chunk = bytes(1 << 20)
        for _ in range(n >> 20):
            handle.write(chunk)
    return out.getvalue()


def test_a_78_byte_file_with_a_foreign_schema_and_a_huge_count_is_one_quarantine():
    data = container("null", 2**30)
    assert len(data) <= 80
    result = ztf.parse_many([RawInput("x.avro", data)])
    assert result.alerts == 0 and result.table.num_rows == 0
    assert len(result.quarantined) == 1, result.quarantined[:3]
    name, reason = result.quarantined[0]
    assert name == "x.avro" and "foreign writer schema" in reason


def test_a_ztf_file_with_a_schema_lacking_the_alert_fields_is_refused_before_decoding():
    schema = {"type": "record", "name": "Other", "fields": [{"name": "a", "type": "null"}]}
    result = ztf.parse_many([RawInput("other.avro", container(schema, 10**6))])
    assert len(result.quarantined) == 1 and "foreign writer schema" in result.quarantined[0][1]


def test_a_block_may_not_declare_more_records_than_it_has_bytes():
    empty = {"type": "record", "name": "Empty", "fields": [{"name": "a", "type": "null"}]}
    with pytest.raises(BadAlertError, match="declares 1000000 records in 0 bytes"):
        avro.read_records(container(empty, 10**6))
    flag = {"type": "record", "name": "Flag", "fields": [{"name": "a", "type": "boolean"}]}
    assert avro.read_records(container(flag, 3, b"\x00\x01\x00")) == [{"a": False}, {"a": True}, {"a": False}]


def test_a_deflate_block_bomb_is_refused_within_the_bound():
    schema = {
        "type": "record",
        "name": "alert",
        "fields": [
            {"name": "objectId", "type": "string"},
            {"name": "candid", "type": "long"},
            {
                "name": "candidate",
                "type": {"type": "record", "name": "c", "fields": [{"name": "jd", "type": "double"}]},
            },
        ],
    }
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = b"".join(packer.compress(bytes(1 << 20)) for _ in range(BOMB >> 20)) + packer.flush()
    assert len(block) < BOMB // 500
    result = ztf.parse_many([RawInput("bomb.avro", container(schema, 1, block, codec="deflate"))])
    assert len(result.quarantined) == 1
    assert "decompression bound" in result.quarantined[0][1]


def test_other_codecs_are_refused():
    schema = {"type": "record", "name": "Z", "fields": [{"name": "objectId", "type": "string"}]}
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), [{"objectId": "a"}], codec="bzip2")
    with pytest.raises(BadAlertError, match="codec 'bzip2' is not accepted"):
        avro.read_records(buf.getvalue())


def test_the_real_packets_still_decode(shared_data):
    paths = sorted((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))[:5]
    result = ztf.parse_many([RawInput(str(p), p.read_bytes()) for p in paths])
    assert result.alerts == len(paths) and not result.quarantined and result.table.num_rows > 0


def test_a_gzipped_fits_bomb_is_refused_with_the_bound_as_reason():
    result = tess.parse(RawInput("tess.fits.gz", _zeros_gzip()))
    assert result.table.num_rows == 0 and len(result.quarantined) == 1
    assert "decompression bound" in result.quarantined[0][1]


def test_a_gzipped_csv_bomb_is_refused_and_a_small_one_still_reads():
    result = catalog.parse(RawInput("bomb.csv.gz", _zeros_gzip()))
    assert result.table.num_rows == 0 and "decompression bound" in result.quarantined[0][1]
    csv = b"object_id,label,mjd,band,mag,magerr\nA,SN Ia,59000.5,g,18.5,0.1\n"
    assert catalog.parse(RawInput("ok.csv.gz", gzip.compress(csv))).table.num_rows == 1


def test_a_tarball_member_over_the_bound_is_one_bad_input_never_read(tmp_path):
    info = tarfile.TarInfo("big.avro")
    info.size = BOMB
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        tar.addfile(info, _ZeroReader(BOMB))
    data = out.getvalue()
    assert len(data) < BOMB // 500
    raws = list(ztf.iter_tarball_bytes("night.tar.gz", data))
    assert len(raws) == 1 and len(raws[0].data) <= LIMIT
    result = ztf.parse_many(raws)
    assert len(result.quarantined) == 1 and "decompression bound" in result.quarantined[0][1]


class _ZeroReader(io.RawIOBase):
    def __init__(self, n: int):
        self.left = n

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return bytes(size)


class _GzipBombHandler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def bomb_server() -> Iterator[str]:
    _GzipBombHandler.body = _zeros_gzip()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GzipBombHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/lc.fits"
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_answer_that_inflates_past_the_bound_is_refused(bomb_server):
    with httpx.Client(timeout=30) as client, pytest.raises(SourceError, match="decompression bound"):
        http_answer(client, "GET", bomb_server, service="MAST download")


def test_the_bound_is_a_setting():
    from cosmic_ray.core.config import Settings

    assert Settings().max_decompressed_bytes == LIMIT
