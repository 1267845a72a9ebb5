"""Rubin/LSST alert packets (every schema version ``lsst-alert-packet`` ships) -> light-curve points.

Shape shared by every source: ``build_request`` (files to read), ``fetch`` (raw bytes),
``parse`` (schema table + quarantined records with reasons). A raw input is either an Avro
container file (what ``cosmic-ray ingest lsst FILE...`` reads; the writer schema travels with it)
or one Kafka message in the Confluent wire format (:func:`decode_confluent`; the stream calls
:func:`decode_confluent` then :func:`parse_records`).

Light curve of an alert = its ``diaSource`` + ``prvDiaSources`` (detections, source
``lsst_alert``) + ``prvDiaForcedSources`` (forced photometry, source ``lsst_fp``, not model
input). Rows carry:

* ``flux`` / ``flux_err``: ``psfFlux`` / ``psfFluxErr`` (``psFlux`` in schemas before 5.0) as
  Rubin reports them, in nanojansky, signed (difference photometry);
* ``mag`` / ``magerr``: AB from a positive flux (zero point 31.4 for nJy), null for a flux that is
  not positive (a negative difference is no brightening), and ``isdiffpos`` is ``flux > 0``;
* ``band``: ``band`` (``filterName`` before 5.0), one of ``u g r i z y``;
* ``mjd``: ``midpointMjdTai`` (``midPointTai`` before 5.0) with ``time_scale`` ``tai``;
* ``object_id``: ``lsst:<diaObjectId>`` (``lsst:ss<ssObjectId>`` for a solar-system source with no
  diaObject);
* ``candid``: the ``diaSourceId`` (forced points: the ``diaForcedSourceId``), the key the lake's
  index deduplicates by, per source; ``alert_candid``: the alert's id (``alertId``, or the
  triggering ``diaSourceId`` from schema 8.0 on); ``rb``: ``reliability`` where the schema has it;
  ``schemavsn``: the writer schema's name (``lsst.v11_1.alert``).

Upper limits (``prvDiaNondetectionLimits``, schemas before 8.0) are not read: their ``diaNoise``
has no stated detection threshold to turn into a limiting magnitude.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import fastavro
import fastavro.read as _avro_read
import numpy as np

from cosmic_ray.core.errors import BadAlertError, SourceError
from cosmic_ray.core.lightcurve import flux_njy_to_mag, mjd_to_night, rows_to_table
from cosmic_ray.sources.avro import read_records
from cosmic_ray.sources.base import FileRequest, ParseResult, RawInput, read_files
from cosmic_ray.sources.lsst_wire import (
    HEADER,
    UnknownSchemaError,
    decode_confluent,
    schema_id_of,
    shipped_schemas,
)

log = logging.getLogger(__name__)

NAME = "lsst"
SOURCE = "lsst_alert"
FORCED_SOURCE = "lsst_fp"
OBJECT_PREFIX = "lsst:"
TIME_SCALE = "tai"
LSST_BANDS = ("u", "g", "r", "i", "z", "y")
_AVRO_MAGIC = b"Obj\x01"
_HEADER_SCHEMA = fastavro.parse_schema(_avro_read.HEADER_SCHEMA)
_MJD_MIN, _MJD_MAX = 0.0, 200000.0

__all__ = [
    "NAME",
    "UnknownSchemaError",
    "build_request",
    "decode_confluent",
    "fetch",
    "parse",
    "parse_message",
    "parse_records",
    "shipped_schemas",
]


def build_request(inputs: Iterable[Path | str]) -> FileRequest:
    """Files and folders -> the Avro files to read (folders: every ``*.avro`` below, sorted).

    Raises:
        SourceError: an input does not exist.
    """
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.avro") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise SourceError(f"LSST input {path} does not exist")
    return FileRequest(tuple(files))


def fetch(request: FileRequest) -> Iterator[RawInput]:
    """The bytes of every file."""
    return read_files(request.files)


def parse(raw: RawInput) -> ParseResult:
    """One Avro container file (or one Confluent-framed message) -> points; bad records quarantined.

    Never raises for bad input: an unreadable file, a foreign schema or an undecodable message is
    one quarantined record with its reason, a bad alert inside a good file is another.
    """
    if raw.data[: len(_AVRO_MAGIC)] == _AVRO_MAGIC:
        return _parse_container(raw)
    if raw.data[:1] == b"\x00" and len(raw.data) >= HEADER.size:
        return parse_message(raw.data, raw.name)
    reason = "empty input" if not raw.data else "neither an Avro container file nor a Confluent wire-format message"
    return ParseResult(table=rows_to_table([]), quarantined=[(raw.name, reason)])


def parse_message(message: bytes, name: str = "message") -> ParseResult:
    """One Kafka message of the Rubin stream -> points; an undecodable message is quarantined as ``name``."""
    try:
        schema_id, record = decode_confluent(message)
    except BadAlertError as exc:
        return ParseResult(table=rows_to_table([]), quarantined=[(name, str(exc))])
    return parse_records([record], names=[name], schema_ids=[schema_id])


def _parse_container(raw: RawInput) -> ParseResult:
    try:
        schema_name = _writer_schema_name(raw.data)
        if schema_id_of(schema_name) is None:
            raise BadAlertError(f"not a Rubin alert: writer schema {schema_name[:60]!r} is not lsst.vM_m.alert")
        records = read_records(raw.data, ("diaSource",))
    except BadAlertError as exc:
        return ParseResult(table=rows_to_table([]), quarantined=[(raw.name, str(exc))])
    return parse_records(records, names=[f"{raw.name}#{i}" for i in range(len(records))], schemavsn=schema_name)


def _writer_schema_name(data: bytes) -> str:
    try:
        header = fastavro.schemaless_reader(io.BytesIO(data), _HEADER_SCHEMA, None)
        text = header["meta"]["avro.schema"]  # type: ignore[index,call-overload]
        declared = json.loads(text.decode() if isinstance(text, bytes) else text)
    except Exception as exc:  # fastavro/json raise several unrelated types on corrupt input
        raise BadAlertError(f"not a readable Avro container: {type(exc).__name__}: {exc}") from exc
    return str(declared.get("name", "")) if isinstance(declared, dict) else ""


def parse_records(
    records: Iterable[dict[str, Any]],
    *,
    names: Sequence[str] | None = None,
    schema_ids: Sequence[int] | None = None,
    schemavsn: str | None = None,
) -> ParseResult:
    """Decoded Rubin alert records -> points in the light-curve schema; bad records quarantined.

    Args:
        records: alerts as decoded (:func:`decode_confluent`, an Avro container, or JSON).
        names: where each record came from (quarantine names); default ``record#<i>``.
        schema_ids: the schema id of each record (recorded as ``schemavsn``), when known.
        schemavsn: the schema name of all records (an Avro container's writer schema).
    """
    rows: list[dict[str, Any]] = []
    quarantined: list[tuple[str, str]] = []
    alerts = 0
    schemas = shipped_schemas() if schema_ids is not None else {}
    for i, record in enumerate(records):
        name = names[i] if names is not None else f"record#{i}"
        version = schemavsn
        if schema_ids is not None:
            known = schemas.get(schema_ids[i])
            version = known.name if known is not None else str(schema_ids[i])
        try:
            rows.extend(alert_rows(record, version))
        except BadAlertError as exc:
            quarantined.append((name, str(exc)))
            continue
        alerts += 1
    return ParseResult(table=rows_to_table(rows), alerts=alerts, quarantined=quarantined)


# --------------------------------------------------------------------------- one alert


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return out if math.isfinite(out) else None


def _id(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
        return None
    return value


def _first(item: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if item.get(key) is not None:
            return item[key]
    return None


def _sub_record(record: dict[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _object_id(record: dict[str, Any], source: dict[str, Any]) -> str | None:
    obj = _sub_record(record, "diaObject")
    dia = _id(source.get("diaObjectId")) or _id(obj.get("diaObjectId"))  # 0 means none in old schemas
    if dia:
        return f"{OBJECT_PREFIX}{dia}"
    ss = _id(source.get("ssObjectId"))
    return f"{OBJECT_PREFIX}ss{ss}" if ss else None


def _point(
    item: Any, kind: str, object_id: str, alert_id: int, version: str | None, position: tuple[Any, Any]
) -> dict[str, Any] | str:
    """One diaSource / diaForcedSource -> a lake row, or why it has no usable photometry."""
    if not isinstance(item, dict):
        return f"a {type(item).__name__}, not a record"
    forced = kind == FORCED_SOURCE
    point_id = _id(item.get("diaForcedSourceId" if forced else "diaSourceId"))
    time = _first(item, "midpointMjdTai", "midPointTai")
    mjd = _number(time)
    band = _first(item, "band", "filterName")
    band = band if isinstance(band, str) else None  # exactly u g r i z y (an upper-case R is not Rubin r)
    flux = _number(_first(item, "psfFlux", "psFlux"))
    flux_err = _number(_first(item, "psfFluxErr", "psFluxErr"))
    if mjd is None or not _MJD_MIN <= mjd <= _MJD_MAX:
        return f"time {str(time)[:30]} is not an MJD"
    if band not in LSST_BANDS:
        return f"band {str(_first(item, 'band', 'filterName'))[:20]!r} is not one of ugrizy"
    if flux is None:
        return "no finite psfFlux"
    if flux_err is not None and flux_err < 0:
        return f"negative psfFluxErr {flux_err}"
    ra = _number(item.get("ra"))
    dec = _number(_first(item, "dec", "decl"))
    if ra is None or dec is None:
        ra, dec = _number(position[0]), _number(position[1])
    return {
        "object_id": object_id,
        "source": kind,
        "mjd": mjd,
        "band": band,
        "mag": None,  # set by _with_magnitudes, for all the alert's points at once
        "magerr": None,
        "flux": flux,
        "flux_err": flux_err,
        "is_limit": False,
        "candid": point_id,
        "ra": ra,
        "dec": dec,
        "rb": None if forced else _number(item.get("reliability")),
        "isdiffpos": flux > 0,
        "schemavsn": version,
        "alert_candid": alert_id,
        "night": mjd_to_night(mjd),
        "time_scale": TIME_SCALE,
    }


def alert_rows(record: Any, version: str | None = None) -> list[dict[str, Any]]:
    """Every usable point of one decoded Rubin alert, as lake rows: the triggering diaSource, its
    ``prvDiaSources`` in packet order, then its ``prvDiaForcedSources``; unusable history is left out.

    Raises:
        BadAlertError: not a Rubin alert (no diaSource), no object to attach it to, or a triggering
            diaSource without usable photometry (time, band in ugrizy, flux).
    """
    if not isinstance(record, dict) or not isinstance(record.get("diaSource"), dict):
        raise BadAlertError("not a Rubin alert: no diaSource record")
    source = record["diaSource"]
    alert_id = _id(_first(record, "alertId", "diaSourceId")) or _id(source.get("diaSourceId"))
    if alert_id is None:
        raise BadAlertError("Rubin alert without an alertId / diaSourceId")
    object_id = _object_id(record, source)
    if object_id is None:
        raise BadAlertError(f"alert {alert_id}: no diaObjectId or ssObjectId to name the object")
    obj = _sub_record(record, "diaObject")
    position = (obj.get("ra"), _first(obj, "dec", "decl"))
    first = _point(source, SOURCE, object_id, alert_id, version, position)
    if isinstance(first, str) or first["candid"] is None:
        why = first if isinstance(first, str) else "no diaSourceId"
        raise BadAlertError(f"alert {alert_id} of {object_id}: diaSource has no usable photometry ({why})")
    rows = [first]
    dropped = 0
    for key, kind in (("prvDiaSources", SOURCE), ("prvDiaForcedSources", FORCED_SOURCE)):
        items = record.get(key) or []
        if not isinstance(items, list):
            raise BadAlertError(f"alert {alert_id} of {object_id}: {key} is not a list of records")
        for item in items:
            row = _point(item, kind, object_id, alert_id, version, position)
            if isinstance(row, str):
                dropped += 1
            else:
                rows.append(row)
    if dropped:
        log.debug("alert %s of %s: %d history points without usable photometry left out", alert_id, object_id, dropped)
    return _with_magnitudes(rows)


def _with_magnitudes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """AB magnitudes of the rows' positive fluxes (None where the flux is not positive or has no error)."""
    flux = np.array([r["flux"] for r in rows], dtype=float)
    err = np.array([np.nan if r["flux_err"] is None else r["flux_err"] for r in rows], dtype=float)
    mag, magerr = flux_njy_to_mag(flux, err)
    for row, m, e in zip(rows, mag.tolist(), magerr.tolist(), strict=True):
        row["mag"] = m if math.isfinite(m) else None
        row["magerr"] = e if math.isfinite(e) else None
    return rows
