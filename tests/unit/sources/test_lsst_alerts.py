"""Rubin/LSST alerts -> lake rows: every schema version lsst-alert-packet ships, Confluent framing,
Avro containers (null and snappy codecs), bad bytes quarantined with reasons.

All LSST packets here are SIMULATED: the PLAsTiCC/ELAsTiCC starter-kit alert of the shared data,
the sample packets the package ships, and records built in this file from each shipped schema
(every field at a neutral value, the photometry fields set by the test). No quality figure comes
from them; they test formats only.
"""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsst.alert.packet import Schema, get_schema_root

from cosmic_ray.core.lightcurve import AB_ZP_NJY, BANDS
from cosmic_ray.sources import get_source, lsst
from cosmic_ray.sources.base import RawInput
from cosmic_ray.sources.lsst_wire import (
    UnknownSchemaError,
    decode_confluent,
    encode_confluent,
    frame,
    schema_id_of,
    shipped_schemas,
)

PACKAGE_SAMPLES = sorted(Path(str(get_schema_root())).glob("*/*/sample_data/fakeAlert.avro"))


def _starter_kit(shared_data: Path) -> Path:
    return next((shared_data / "plasticc-elasticc-SIMULATED" / "lsst_v4_1_starterkit").glob("*.avro"))


def _raw(path: Path) -> RawInput:
    return RawInput(str(path), path.read_bytes())


def _neutral(schema: Any) -> Any:
    """A value of an (expanded) Avro type: null where allowed, else zero / empty / the first symbol."""
    if isinstance(schema, list):
        return None if "null" in schema else _neutral(schema[0])
    if isinstance(schema, str):
        return {"boolean": False, "int": 0, "long": 0, "float": 0.0, "double": 0.0, "string": "", "bytes": b""}.get(
            schema
        )
    kind = schema["type"]
    if kind == "record":
        return {f["name"]: _neutral(f["type"]) for f in schema["fields"]}
    if kind == "array":
        return []
    if kind == "map":
        return {}
    if kind == "enum":
        return schema["symbols"][0]
    if kind == "fixed":
        return b"\x00" * schema["size"]
    return _neutral(kind)


def _field_type(record_schema: dict[str, Any], name: str) -> Any:
    """The record schema of field ``name`` (the item schema of an array, the record of a nullable union)."""
    kind = next(f["type"] for f in record_schema["fields"] if f["name"] == name)
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    return kind["items"] if isinstance(kind, dict) and kind["type"] == "array" else kind


def _set(item: dict[str, Any], names: tuple[str, ...], value: Any) -> None:
    for name in names:
        if name in item:
            item[name] = value


def _source(item_schema: dict[str, Any], *, point_id: int, mjd: float, band: str, flux: float, forced: bool) -> dict:
    item = _neutral(item_schema)
    _set(item, ("diaForcedSourceId",) if forced else ("diaSourceId",), point_id)
    _set(item, ("diaObjectId",), 4242)
    _set(item, ("midpointMjdTai", "midPointTai"), mjd)
    _set(item, ("band", "filterName"), band)
    _set(item, ("psfFlux", "psFlux"), flux)
    _set(item, ("psfFluxErr", "psFluxErr"), 12.0)
    _set(item, ("ra",), 351.57)
    _set(item, ("dec", "decl"), 0.126)
    return item


def _alert(schema_id: int) -> dict[str, Any]:
    """A SIMULATED alert of the shipped schema ``schema_id``: a g detection, two history detections
    (one a negative difference), two forced points (one negative)."""
    expanded = fastavro.schema.expand_schema(shipped_schemas()[schema_id].parsed)
    record = _neutral(expanded)
    dia, forced = _field_type(expanded, "diaSource"), _field_type(expanded, "prvDiaForcedSources")
    record["diaSource"] = _source(dia, point_id=1003, mjd=60903.25, band="g", flux=2000.0, forced=False)
    record["prvDiaSources"] = [
        _source(dia, point_id=1001, mjd=60901.25, band="r", flux=1000.0, forced=False),
        _source(dia, point_id=1002, mjd=60902.25, band="i", flux=-500.0, forced=False),
    ]
    record["prvDiaForcedSources"] = [
        _source(forced, point_id=2001, mjd=60899.25, band="z", flux=-30.0, forced=True),
        _source(forced, point_id=2002, mjd=60900.25, band="y", flux=40.0, forced=True),
    ]
    record["diaObject"] = _neutral(_field_type(expanded, "diaObject"))
    _set(record["diaObject"], ("diaObjectId",), 4242)
    _set(record, ("alertId", "diaSourceId"), 1003)
    return record


# ----------------------------------------------------------------------------- schema ids


def test_schema_ids_are_the_package_numbering():
    schemas = shipped_schemas()
    versions = sorted(p.parent.name for p in Path(str(get_schema_root())).glob("*/*/lsst.v*.alert.avsc"))
    assert len(schemas) == len(versions) >= 15  # every shipped version, 3.0 .. 11.1 today
    for schema_id, schema in schemas.items():
        major, minor = schema.version.split(".")
        path = Path(str(get_schema_root())) / major / minor / f"lsst.v{major}_{minor}.alert.avsc"
        assert Schema.from_file(str(path)).get_schema_id() == schema_id == schema_id_of(schema.name)
    assert schema_id_of("lsst.v7_3.alert") == 703 and schema_id_of("lsst.v11_1.alert") == 1101
    assert schema_id_of("ztf.alert") is None


# ----------------------------------------------------------------------------- wire format


@pytest.mark.parametrize("schema_id", sorted(shipped_schemas()))
def test_every_shipped_schema_round_trips_through_the_confluent_wire_format_simulated(schema_id: int):
    record = _alert(schema_id)
    message = encode_confluent(record, schema_id)
    assert message[:5] == struct.pack(">bi", 0, schema_id)  # Rubin's header (ap_association)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, shipped_schemas()[schema_id].parsed, record)
    assert message[5:] == body.getvalue()

    got_id, decoded = decode_confluent(message)
    assert got_id == schema_id and set(decoded) == set(record)
    assert decoded["diaSource"]["diaSourceId"] == 1003 and len(decoded["prvDiaForcedSources"]) == 2
    result = lsst.parse_records([decoded], schema_ids=[got_id])
    assert result.quarantined == [] and result.alerts == 1
    rows = result.table.to_pylist()
    assert [r["candid"] for r in rows] == [1003, 1001, 1002, 2001, 2002]
    assert [r["source"] for r in rows] == ["lsst_alert"] * 3 + ["lsst_fp"] * 2
    assert [r["band"] for r in rows] == ["g", "r", "i", "z", "y"]
    assert [r["flux"] for r in rows] == [2000.0, 1000.0, -500.0, -30.0, 40.0]  # nJy, signed, as sent
    assert {r["object_id"] for r in rows} == {"lsst:4242"}
    assert {r["time_scale"] for r in rows} == {"tai"} and {r["alert_candid"] for r in rows} == {1003}
    assert {r["schemavsn"] for r in rows} == {shipped_schemas()[schema_id].name}
    for r in rows:
        if r["flux"] > 0:
            assert r["mag"] == pytest.approx(AB_ZP_NJY - 2.5 * math.log10(r["flux"]))
            assert r["magerr"] == pytest.approx(2.5 / math.log(10) * 12.0 / r["flux"])
            assert r["isdiffpos"] is True
        else:  # a negative difference has no magnitude: never a brightening
            assert r["mag"] is None and r["magerr"] is None and r["isdiffpos"] is False


def test_the_stream_message_parses_like_the_same_alert_in_a_container_simulated(tmp_path: Path):
    schema_id = max(shipped_schemas())
    record = _alert(schema_id)
    from_message = lsst.parse_message(encode_confluent(record, schema_id), "kafka:0:17").table
    buf = io.BytesIO()
    fastavro.writer(buf, shipped_schemas()[schema_id].parsed, [record])
    from_file = lsst.parse(RawInput("alerts.avro", buf.getvalue())).table
    assert from_message.to_pylist() == from_file.to_pylist()


def test_unknown_schema_id_is_quarantined_with_the_known_ids():
    schema_id = max(shipped_schemas())
    payload = encode_confluent(_alert(schema_id), schema_id)[5:]
    with pytest.raises(UnknownSchemaError, match="unknown Rubin alert schema id 9999"):
        decode_confluent(frame(9999, payload))
    result = lsst.parse_message(frame(9999, payload), "kafka:0:1")
    [(name, reason)] = result.quarantined
    assert name == "kafka:0:1" and "9999" in reason and str(schema_id) in reason
    assert result.table.num_rows == 0 and result.alerts == 0


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda m: m[:3], "shorter than the 5-byte Confluent header"),
        (lambda m: b"\x01" + m[1:], "magic byte 1 is not 0"),
        (lambda m: m[: len(m) // 2], "does not decode with schema"),
        (lambda m: m + b"\x00\x01", "bytes after the alert record"),
    ],
    ids=["short", "magic", "truncated", "trailing"],
)
def test_bad_bytes_are_quarantined_with_a_reason(mangle, reason: str):
    schema_id = max(shipped_schemas())
    message = mangle(encode_confluent(_alert(schema_id), schema_id))
    result = lsst.parse_message(message, "kafka:3:9")
    assert [n for n, _ in result.quarantined] == ["kafka:3:9"]
    assert reason in result.quarantined[0][1] and result.table.num_rows == 0


def test_garbage_and_foreign_files_are_quarantined(shared_data: Path):
    assert "neither an Avro container" in lsst.parse(RawInput("x.bin", b"hello")).quarantined[0][1]
    ztf_packet = next((shared_data / "ztf-alerts" / "ztf-avro-alert").rglob("*.avro"))
    [(_, reason)] = lsst.parse(_raw(ztf_packet)).quarantined
    assert "not a Rubin alert" in reason


# ----------------------------------------------------------------------------- packets


def test_the_shared_starter_kit_alert_simulated(shared_data: Path):
    path = _starter_kit(shared_data)
    [packet] = list(fastavro.reader(io.BytesIO(path.read_bytes())))
    result = lsst.parse(_raw(path))
    assert result.quarantined == [] and result.alerts == 1
    rows = result.table.to_pylist()
    sources = [packet["diaSource"], *packet["prvDiaSources"]]
    assert [r["candid"] for r in rows] == [s["diaSourceId"] for s in sources]
    assert [r["flux"] for r in rows] == [s["psFlux"] for s in sources]  # schema 4.1 names
    assert [r["mjd"] for r in rows] == [s["midPointTai"] for s in sources]
    assert [r["band"] for r in rows] == [s["filterName"] for s in sources]
    assert {r["object_id"] for r in rows} == {f"lsst:{packet['diaSource']['diaObjectId']}"}
    assert {r["time_scale"] for r in rows} == {"tai"} and {r["schemavsn"] for r in rows} == {"lsst.v4_1.alert"}
    assert {r["band"] for r in rows} <= set(BANDS)


def test_the_packages_sample_packets_simulated():
    assert len(PACKAGE_SAMPLES) >= 15
    parsed = 0
    for path in PACKAGE_SAMPLES:
        [packet] = list(fastavro.reader(io.BytesIO(path.read_bytes())))
        result = lsst.parse(_raw(path))
        time = packet["diaSource"].get("midpointMjdTai", packet["diaSource"].get("midPointTai"))
        if time > 200000:  # the 3.0 .. 7.4 samples carry Unix seconds where an MJD belongs
            [(_, reason)] = result.quarantined
            assert "is not an MJD" in reason and result.table.num_rows == 0
            continue
        parsed += 1
        rows = result.table.to_pylist()
        assert result.quarantined == [] and len(rows) == 1 + len(packet["prvDiaSources"])
        assert rows[0]["flux"] == packet["diaSource"]["psfFlux"] and rows[0]["band"] == packet["diaSource"]["band"]
    assert parsed >= 5  # 8.0, 9.0, 10.0, 11.0, 11.1


def test_snappy_containers_read_like_uncompressed_ones_simulated():
    path = next(p for p in PACKAGE_SAMPLES if "/11/1/" in str(p))
    reader = fastavro.reader(io.BytesIO(path.read_bytes()))
    records = list(reader)
    snappy = io.BytesIO()
    fastavro.writer(snappy, reader.writer_schema, records * 3, codec="snappy")
    plain = io.BytesIO()
    fastavro.writer(plain, reader.writer_schema, records * 3, codec="null")
    a = lsst.parse(RawInput("snappy.avro", snappy.getvalue()))
    b = lsst.parse(RawInput("plain.avro", plain.getvalue()))
    assert a.quarantined == [] and a.alerts == 3 and a.table.to_pylist() == b.table.to_pylist()
    corrupt = bytearray(snappy.getvalue())
    corrupt[-40] ^= 0xFF  # inside the last block
    [(_, reason)] = lsst.parse(RawInput("corrupt.avro", bytes(corrupt))).quarantined
    assert "not a readable Avro container" in reason


def test_a_bad_alert_is_quarantined_and_the_others_kept_simulated():
    schema_id = max(shipped_schemas())
    good, bad_band, no_object = _alert(schema_id), _alert(schema_id), _alert(schema_id)
    bad_band["diaSource"]["band"] = "w"
    no_object["diaSource"]["diaObjectId"] = None
    no_object["diaObject"] = None
    result = lsst.parse_records([good, bad_band, no_object, {"foo": 1}], names=["a", "b", "c", "d"])
    assert result.alerts == 1 and set(result.table.column("alert_candid").to_pylist()) == {1003}
    reasons = dict(result.quarantined)
    assert "'w' is not one of ugrizy" in reasons["b"]
    assert "no diaObjectId" in reasons["c"] and "no diaSource" in reasons["d"]


def test_lsst_is_registered_and_reads_folders(tmp_path: Path, shared_data: Path):
    source = get_source("lsst")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.avro").write_bytes(_starter_kit(shared_data).read_bytes())
    request = source.build_request([tmp_path])
    assert [p.name for p in request.files] == ["a.avro"] and not request.remote
    [raw] = list(source.fetch(request))
    assert source.parse(raw).table.num_rows == 2
    assert np.all(np.isfinite(source.parse(raw).table.column("flux").to_numpy()))


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.sampled_from(["u", "g", "y", "R", " i "]),
    st.lists(st.none(), max_size=2),
)
_FIELDS = ("diaSourceId", "diaObjectId", "ssObjectId", "midpointMjdTai", "midPointTai", "band", "filterName")
_FIELDS += ("psfFlux", "psfFluxErr", "psFlux", "ra", "dec", "decl", "reliability", "diaForcedSourceId")
_ITEMS = st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=len(_FIELDS))


@settings(max_examples=300, deadline=None)
@given(
    source=st.one_of(_ITEMS, _VALUES),
    history=st.one_of(st.lists(st.one_of(_ITEMS, _VALUES), max_size=3), _VALUES),
    forced=st.one_of(st.lists(_ITEMS, max_size=3), _VALUES),
    alert_id=_VALUES,
)
def test_hostile_records_are_quarantined_or_read_never_raised(source, history, forced, alert_id):
    record = {"alertId": alert_id, "diaSource": source, "prvDiaSources": history, "prvDiaForcedSources": forced}
    result = lsst.parse_records([record, "not a record"], names=["a", "b"])
    assert ("b", "not a Rubin alert: no diaSource record") in result.quarantined
    assert result.alerts + len(result.quarantined) == 2
    for row in result.table.to_pylist():
        assert row["band"] in BANDS and math.isfinite(row["mjd"]) and math.isfinite(row["flux"])
        assert row["time_scale"] == "tai" and row["object_id"].startswith("lsst:")
        assert row["mag"] is None or (row["flux"] > 0 and math.isfinite(row["mag"]))
