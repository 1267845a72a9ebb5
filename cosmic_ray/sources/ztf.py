"""ZTF alert packets (Avro, schema versions 2.0 to 4.02) -> light-curve points.

Shape shared by every source: ``build_request`` (what would be read, no I/O beyond listing),
``fetch`` (raw bytes), ``parse`` (schema table + quarantined records with reasons).

Light curve of an alert = the triggering candidate + ``prv_candidates`` (detections have a
``candid``; upper limits do not and carry ``diffmaglim``) + ``fp_hists`` forced photometry
(schema >= 4.0). Difference flux (nanojansky) is signed by ``isdiffpos``; times are UTC.
"""

from __future__ import annotations

import io
import logging
import math
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cosmic_ray.core.errors import BadAlertError, SourceError
from cosmic_ray.core.lightcurve import AB_ZP_NJY, SCHEMA, jd_to_mjd, mjd_to_jd, mjd_to_nights
from cosmic_ray.sources import ztf_stamps
from cosmic_ray.sources.avro import ForeignSchemaError, read_records
from cosmic_ray.sources.base import ParseResult, RawInput
from cosmic_ray.sources.bounded import DecompressionLimitError, max_decompressed_bytes, read_bounded

log = logging.getLogger(__name__)

NAME = "ztf"
_REQUIRED = ("objectId", "candid", "candidate")
_EMPTY_REASON = {  # why a tarball member came with no bytes (see _iter_tar)
    "<over the decompression bound>": "tar member inflates beyond the decompression bound: refused, not read",
    "<truncated>": "tarball is truncated",
}


@dataclass(frozen=True)
class ZtfRequest:
    """What an ingest would read: Avro files and nightly tarballs."""

    avro_files: tuple[Path, ...]
    tarballs: tuple[Path, ...] = ()

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file to read: the Avro packets, then the tarballs (streamed member by member)."""
        return self.avro_files + self.tarballs

    @property
    def remote(self) -> bool:
        return False

    @property
    def parse_options(self) -> dict[str, Any]:
        return {}

    @property
    def count(self) -> int:
        return len(self.avro_files) + len(self.tarballs)


def build_request(inputs: Iterable[Path | str]) -> ZtfRequest:
    """Expand files and folders into the Avro files and tarballs to read (sorted, deterministic)."""
    avro: list[Path] = []
    tars: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            avro.extend(sorted(p for p in path.rglob("*.avro") if p.is_file()))
            tars.extend(sorted(p for p in path.rglob("*.tar.gz") if p.is_file()))
        elif path.name.endswith((".tar.gz", ".tgz", ".tar")):
            tars.append(path)
        elif path.is_file():
            avro.append(path)
        else:
            raise SourceError(f"ZTF input {path} does not exist")
    return ZtfRequest(avro_files=tuple(avro), tarballs=tuple(tars))


def fetch(request: ZtfRequest) -> Iterator[RawInput]:
    """Yield the raw bytes of every packet; tarball members are streamed, never unpacked to disk."""
    for path in request.avro_files:
        yield RawInput(str(path), path.read_bytes())
    for tar_path in request.tarballs:
        yield from iter_tarball(tar_path)


def iter_tarball(path: Path) -> Iterator[RawInput]:
    """Stream the ``.avro`` members of a ZTF nightly archive (``ztf_public_YYYYMMDD.tar.gz``)."""
    with open(path, "rb") as handle:
        yield from _iter_tar(str(path), tarfile.open(fileobj=handle, mode="r|*"))


def iter_tarball_bytes(name: str, data: bytes) -> Iterator[RawInput]:
    """Same as :func:`iter_tarball` for a tarball already in memory; an unreadable one is one bad input."""
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r|*")
    except tarfile.TarError as exc:
        yield RawInput(name, b"")  # parse() quarantines empty bytes with the reason below
        log.warning("unreadable tarball %s: %s", name, exc)
        return
    yield from _iter_tar(name, tar)


def _iter_tar(name: str, tar: tarfile.TarFile) -> Iterator[RawInput]:
    """The ``.avro`` members; one larger than the decompression bound is one bad input (empty bytes), never read."""
    limit = max_decompressed_bytes()
    with tar:
        try:
            for member in tar:
                if not member.isfile() or not member.name.endswith(".avro"):
                    continue
                if member.size > limit:
                    log.warning("tarball %s: member %s declares %d bytes: skipped", name, member.name, member.size)
                    yield RawInput(f"{name}!{member.name}!<over the decompression bound>", b"")
                    continue
                handle = tar.extractfile(member)
                if handle is not None:
                    try:
                        data = read_bounded(handle, f"tar member {member.name}", limit)
                    except DecompressionLimitError:
                        yield RawInput(f"{name}!{member.name}!<over the decompression bound>", b"")
                        continue
                    yield RawInput(f"{name}!{member.name}", data)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            log.warning("tarball %s is truncated: %s", name, exc)
            yield RawInput(f"{name}!<truncated>", b"")


# Julian dates a point may carry: MJD 0 .. 200000 (1858 .. 2406). Outside that the time is garbage
# (and its night partition would be too), so the point is unusable.
_MJD_MIN, _MJD_MAX = 0.0, 200000.0
_JD_MIN, _JD_MAX = mjd_to_jd(_MJD_MIN), mjd_to_jd(_MJD_MAX)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return out if math.isfinite(out) else None


def _candid(value: Any) -> int | None:
    """A candid as an int; anything else (text, float, list...) is a malformed alert."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise BadAlertError(f"candid {value!r} is not a 64-bit integer")
    return value


def _clean(item: dict[str, Any], struct: pa.StructType) -> dict[str, Any]:
    """The fields of ``struct`` from one point, each of its Arrow type or ``None``.

    Avro-decoded packets are typed by their schema already; alerts posted as JSON are not, so a
    value of the wrong type becomes ``None`` (its point is then unusable by the same rules),
    except a malformed ``candid``, which makes the alert malformed.
    """
    out: dict[str, Any] = {}
    for f in struct:
        value = item.get(f.name)
        if f.name == "candid":
            out[f.name] = _candid(value)
        elif pa.types.is_floating(f.type):
            out[f.name] = _finite(value)
        elif pa.types.is_integer(f.type):  # fid: 1, 2, 3 are bands, anything else is no band
            out[f.name] = value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 4 else None
        else:
            out[f.name] = None if value is None else str(value)
    return out


def check_alert(record: Any) -> dict[str, Any]:
    """A decoded alert as :func:`records_to_tables` reads it: checked, and its points typed (:func:`_clean`).

    Raises:
        BadAlertError: not a ZTF alert (foreign schema, missing fields), a malformed candid, or
            ``prv_candidates`` / ``fp_hists`` that are not lists of records.
    """
    if not isinstance(record, dict):
        raise BadAlertError(f"not a ZTF alert: a {type(record).__name__}, not a record")
    missing = [key for key in _REQUIRED if key not in record]
    if missing or not isinstance(record.get("candidate"), dict):
        raise BadAlertError(f"not a ZTF alert: missing {missing or ['candidate']}")
    obj = record["objectId"]
    if not isinstance(obj, str) or not obj:
        raise BadAlertError(f"not a ZTF alert: objectId {obj!r} is not a name")
    alert_candid = _candid(record.get("candid"))
    if alert_candid is None:
        raise BadAlertError(f"alert of {obj} has no candid")
    prvs, fps = record.get("prv_candidates") or [], record.get("fp_hists") or []
    for key, items in (("prv_candidates", prvs), ("fp_hists", fps)):
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise BadAlertError(f"alert {alert_candid} of {obj}: {key} is not a list of records")
    return {
        "objectId": obj,
        "candid": alert_candid,
        "schemavsn": str(record.get("schemavsn", "")),
        "candidate": _clean(record["candidate"], _CANDIDATE),
        "prv_candidates": [_clean(p, _POINT) for p in prvs],
        "fp_hists": [_clean(f, _FORCED) for f in fps],
    }


def alert_to_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """All light-curve points carried by one decoded alert record, as row dicts (every schema column).

    The same rules, values and order as :func:`records_to_tables` (this is that function on one
    checked alert): the candidate, its ``prv_candidates`` in packet order (detections have a
    ``candid``, upper limits do not), then its ``fp_hists`` forced photometry; unusable points
    are left out.

    Raises:
        BadAlertError: the record is not a ZTF alert (foreign schema) or its candidate is unusable.
    """
    table, _meta, bad = records_to_tables([check_alert(record)])
    if bad:
        raise BadAlertError(bad[0][1])
    return table.to_pylist()


def parse(raw: RawInput) -> ParseResult:
    """Decode one Avro file into schema rows; bad files/records are quarantined, never raised."""
    return parse_many([raw])


def parse_many(raws: Iterable[RawInput]) -> ParseResult:
    """Decode many Avro files at once: the records are decoded one by one, the light-curve table is
    built column-wise with Arrow (no per-point Python dicts) by :func:`records_to_tables`.

    ``ParseResult.alert_meta`` holds one row per alert (:data:`ALERT_SCHEMA`), the fields the
    pre-filters read. A record :func:`check_alert` refuses is quarantined with its reason; a file
    whose writer schema is not a ZTF alert's is refused whole before any record is decoded.
    """
    records: list[dict[str, Any]] = []
    names: list[str] = []
    quarantined: list[tuple[str, str]] = []
    for raw in raws:
        if not raw.data:
            quarantined.append(
                (raw.name, _EMPTY_REASON.get(raw.name.rsplit("!", 1)[-1], "empty input: not a readable Avro container"))
            )
            continue
        try:
            decoded = read_records(raw.data, _REQUIRED)
        except ForeignSchemaError as exc:
            quarantined.append((raw.name, f"not a ZTF alert: {exc}"))
            continue
        except BadAlertError as exc:
            quarantined.append((raw.name, str(exc)))
            continue
        for i, record in enumerate(decoded):
            if _is_typed_alert(record):
                records.append(record)  # fast path: typed by the Avro schema, already in shape
            else:
                try:
                    records.append(check_alert(record))
                except BadAlertError as exc:
                    quarantined.append((f"{raw.name}#{i}", str(exc)))
                    continue
            names.append(f"{raw.name}#{i}")
    try:
        table, meta, bad = records_to_tables(records, names)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):  # a field of a foreign type
        table, meta, bad = _records_to_tables_checked(records, names, quarantined)
    quarantined.extend(bad)
    return ParseResult(table=table, alerts=meta.num_rows, quarantined=quarantined, alert_meta=meta)


def _records_to_tables_checked(
    records: list[dict[str, Any]], names: list[str], quarantined: list[tuple[str, str]]
) -> tuple[pa.Table, pa.Table, list[tuple[str, str]]]:
    """:func:`records_to_tables` after :func:`check_alert` typed every record (the slow, safe path)."""
    checked, checked_names = [], []
    for record, name in zip(records, names, strict=True):
        try:
            checked.append(check_alert(record))
            checked_names.append(name)
        except BadAlertError as exc:
            quarantined.append((name, str(exc)))
    return records_to_tables(checked, checked_names)


def _is_typed_alert(record: Any) -> bool:
    """A ZTF packet as fastavro decodes it: what :func:`check_alert` would pass through unchanged in value."""
    return (
        isinstance(record, dict)
        and isinstance(record.get("objectId"), str)
        and bool(record["objectId"])
        and type(record.get("candid")) is int
        and isinstance(record.get("candidate"), dict)
        and isinstance(record.get("prv_candidates") or [], list)
        and isinstance(record.get("fp_hists") or [], list)
    )


_POINT = pa.struct(
    [
        ("candid", pa.int64()),
        ("jd", pa.float64()),
        ("fid", pa.int64()),
        ("magpsf", pa.float64()),
        ("sigmapsf", pa.float64()),
        ("diffmaglim", pa.float64()),
        ("isdiffpos", pa.string()),
        ("ra", pa.float64()),
        ("dec", pa.float64()),
        ("rb", pa.float64()),
        ("drb", pa.float64()),
    ]
)
_FORCED = pa.struct(
    [
        ("jd", pa.float64()),
        ("fid", pa.int64()),
        ("forcediffimflux", pa.float64()),
        ("forcediffimfluxunc", pa.float64()),
        ("magzpsci", pa.float64()),
    ]
)
# candidate fields the pre-filters read (cosmic_ray.ingest.prefilter), kept per alert
PREFILTER_FIELDS = ("rb", "drb", "ssdistnr", "ssmagnr", "sgscore1", "distpsnr1")
# candidate fields the per-object context reads (cosmic_ray.sources.ztf_context), kept per alert
CONTEXT_FIELDS = ("sgmag1", "srmag1", "simag1", "szmag1", "distnr", "magnr", "neargaia")
ALERT_SCHEMA = pa.schema(
    [
        pa.field("object_id", pa.string(), nullable=False),
        pa.field("alert_candid", pa.int64(), nullable=False),
        pa.field("schemavsn", pa.string()),
        pa.field("mjd", pa.float64(), nullable=False),
        pa.field("band", pa.string(), nullable=False),
        pa.field("magpsf", pa.float64()),
        pa.field("ra", pa.float64()),
        pa.field("dec", pa.float64()),
        pa.field("isdiffpos", pa.bool_()),
        *[pa.field(name, pa.float64()) for name in PREFILTER_FIELDS],
        pa.field("night", pa.string(), nullable=False),
        *[pa.field(name, pa.float64()) for name in CONTEXT_FIELDS],
    ]
)
_CANDIDATE = pa.struct(
    [(f.name, f.type) for f in _POINT] + [(n, pa.float64()) for n in PREFILTER_FIELDS[2:] + CONTEXT_FIELDS]
)
_BANDS = pa.array([None, "g", "r", "i"], pa.string())  # index = fid


def _np(array: pa.Array) -> np.ndarray:
    """Float view of a numeric Arrow array, nulls as NaN."""
    return pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)


def _finite_or_null(array: pa.Array) -> pa.Array:
    values = _np(array)
    return pa.array(values, mask=~np.isfinite(values))


def _bands(fid: pa.Array) -> tuple[pa.Array, np.ndarray]:
    codes = pc.fill_null(fid, 0).to_numpy(zero_copy_only=False)
    ok = (codes >= 1) & (codes <= 3)
    return _BANDS.take(pa.array(np.where(ok, codes, 0))), ok


def _nights(mjd: np.ndarray) -> pa.Array:
    usable = np.isfinite(mjd) & (mjd >= _MJD_MIN) & (mjd <= _MJD_MAX)
    return pa.array(mjd_to_nights(np.where(usable, mjd, 40587.0)), pa.string())  # unusable rows are dropped later


def _diffpos(values: pa.Array) -> pa.Array:
    lowered = pc.utf8_lower(values)
    return pc.if_else(pc.is_valid(values), pc.is_in(lowered, pa.array(["t", "1", "true"])), pa.scalar(None, pa.bool_()))


def records_to_tables(
    records: list[dict[str, Any]], names: list[str] | None = None
) -> tuple[pa.Table, pa.Table, list[tuple[str, str]]]:
    """Decoded ZTF alert records -> (points in the light-curve schema, one row per alert, quarantined).

    Args:
        records: decoded alerts (each has ``objectId``, ``candid`` and a ``candidate`` record).
        names: where each record came from (for quarantine reasons); defaults to the object ids.
    """
    if not records:
        return SCHEMA.empty_table(), ztf_stamps.with_stamps(ALERT_SCHEMA.empty_table(), []), []
    objects = [str(r["objectId"]) for r in records]
    versions = [str(r.get("schemavsn", "")) for r in records]
    alert_candids = [r.get("candid") for r in records]
    points: list[dict[str, Any]] = []
    lengths = np.empty(len(records), dtype=np.int64)
    forced: list[dict[str, Any]] = []
    forced_lengths = np.empty(len(records), dtype=np.int64)
    for i, record in enumerate(records):
        prv = record.get("prv_candidates") or []
        points.append(record["candidate"])
        points.extend(prv)
        lengths[i] = 1 + len(prv)
        fps = record.get("fp_hists") or []
        forced.extend(fps)
        forced_lengths[i] = len(fps)
    parent = np.repeat(np.arange(len(records)), lengths)  # (P,) alert index of each point
    first = np.zeros(len(points), dtype=bool)
    first[np.concatenate([[0], np.cumsum(lengths)[:-1]])] = True

    cols = dict(zip(_POINT.names, pa.array(points, type=_POINT).flatten(), strict=False))
    jd, mag, err, lim = _np(cols["jd"]), _np(cols["magpsf"]), _np(cols["sigmapsf"]), _np(cols["diffmaglim"])
    band, band_ok = _bands(cols["fid"])
    is_det = first | cols["candid"].is_valid().to_numpy(zero_copy_only=False)
    jd_ok = np.isfinite(jd) & (jd >= _JD_MIN) & (jd <= _JD_MAX)
    with np.errstate(over="ignore", invalid="ignore"):  # absurd magnitudes overflow: those rows are unusable
        flux_abs = 10 ** (-0.4 * (mag - AB_ZP_NJY))
        flux_err = flux_abs * err * math.log(10) / 2.5
    det_ok = np.isfinite(mag) & jd_ok & band_ok & np.isfinite(err) & (err >= 0) & np.isfinite(flux_err)
    lim_ok = np.isfinite(lim) & jd_ok & band_ok
    usable = np.where(is_det, det_ok, lim_ok)
    bad_alert = np.zeros(len(records), dtype=bool)
    bad_alert[parent[first & ~usable]] = True
    quarantined = [
        ((names or objects)[i], f"alert {alert_candids[i]} of {objects[i]}: candidate has no usable photometry")
        for i in np.flatnonzero(bad_alert)
    ]
    keep = usable & ~bad_alert[parent]

    mjd = jd_to_mjd(jd)
    diffpos = _diffpos(cols["isdiffpos"])
    sign = np.where(pc.fill_null(diffpos, True).to_numpy(zero_copy_only=False), 1.0, -1.0)
    flux = sign * flux_abs
    det_mask = ~is_det  # null where not a detection
    n = len(points)
    parent_idx = pa.array(parent)
    obj_col = pa.array(objects, pa.string()).take(parent_idx)
    table = pa.table(
        {
            "object_id": obj_col,
            "source": pa.array(np.full(n, "ztf_alert", dtype=object), pa.string()),
            "mjd": pa.array(mjd),
            "band": band,
            "mag": pa.array(np.where(is_det, mag, lim)),
            "magerr": pa.array(err, mask=det_mask),
            "flux": pa.array(flux, mask=det_mask),
            "flux_err": pa.array(flux_err, mask=det_mask),
            "is_limit": pa.array(~is_det),
            "candid": pc.if_else(pa.array(is_det), cols["candid"], pa.scalar(None, pa.int64())),
            "label": pa.nulls(n, pa.string()),
            "ra": pc.if_else(pa.array(is_det), _finite_or_null(cols["ra"]), pa.scalar(None, pa.float64())),
            "dec": pc.if_else(pa.array(is_det), _finite_or_null(cols["dec"]), pa.scalar(None, pa.float64())),
            "rb": pc.if_else(pa.array(is_det), _finite_or_null(cols["rb"]), pa.scalar(None, pa.float64())),
            "drb": pc.if_else(pa.array(is_det), _finite_or_null(cols["drb"]), pa.scalar(None, pa.float64())),
            "isdiffpos": pc.if_else(pa.array(is_det), diffpos, pa.scalar(None, pa.bool_())),
            "schemavsn": pa.array(versions, pa.string()).take(parent_idx),
            "alert_candid": pa.array(alert_candids, pa.int64()).take(parent_idx),
            "night": _nights(mjd),
            "time_scale": pa.array(np.full(n, "utc", dtype=object), pa.string()),  # jd: exposure start, UTC
        },
        schema=SCHEMA,
    ).filter(pa.array(keep))
    points_table = table
    if forced:
        forced_parent = np.repeat(np.arange(len(records)), forced_lengths)  # (F,) alert index of each forced point
        fp_table, fp_keep = _forced_table(forced, forced_parent, objects, versions, alert_candids, bad_alert)
        # each alert's points, then its forced photometry, alert after alert (as alert_to_rows gives them)
        order = np.argsort(np.concatenate([parent[keep], forced_parent[fp_keep]]), kind="stable")
        points_table = pa.concat_tables([table, fp_table]).take(pa.array(order))

    good = ~bad_alert
    cand = pa.array([r["candidate"] for r in records], type=_CANDIDATE).flatten()
    cand = dict(zip(_CANDIDATE.names, cand, strict=False))
    cand_band, _ = _bands(cand["fid"])
    cand_mjd = jd_to_mjd(_np(cand["jd"]))
    meta = pa.table(
        {
            "object_id": pa.array(objects, pa.string()),
            "alert_candid": pa.array(alert_candids, pa.int64()),
            "schemavsn": pa.array(versions, pa.string()),
            "mjd": pa.array(cand_mjd),
            "band": cand_band,
            "magpsf": _finite_or_null(cand["magpsf"]),
            "ra": _finite_or_null(cand["ra"]),
            "dec": _finite_or_null(cand["dec"]),
            "isdiffpos": _diffpos(cand["isdiffpos"]),
            **{name: _finite_or_null(cand[name]) for name in PREFILTER_FIELDS},
            "night": _nights(cand_mjd),
            **{name: _finite_or_null(cand[name]) for name in CONTEXT_FIELDS},
        },
        schema=ALERT_SCHEMA,
    )
    meta = ztf_stamps.with_stamps(meta, records).filter(pa.array(good))  # stamps + cross-match fields ride along
    return points_table, meta, quarantined


def _forced_table(
    forced: list[dict[str, Any]],
    parent: np.ndarray,
    objects: list[str],
    versions: list[str],
    alert_candids: list[Any],
    bad_alert: np.ndarray,
) -> tuple[pa.Table, np.ndarray]:
    """Forced-photometry points -> (their usable rows in the light-curve schema, which rows were kept)."""
    cols = dict(zip(_FORCED.names, pa.array(forced, type=_FORCED).flatten(), strict=False))
    jd, flux_dn, unc, zp = (_np(cols[k]) for k in ("jd", "forcediffimflux", "forcediffimfluxunc", "magzpsci"))
    band, band_ok = _bands(cols["fid"])
    with np.errstate(over="ignore", invalid="ignore"):  # absurd zero points overflow: those rows are unusable
        scale = 10 ** (-0.4 * (zp - AB_ZP_NJY))  # DN -> nanojansky
        flux_njy, unc_njy = flux_dn * scale, np.abs(unc * scale)
    keep = (
        np.isfinite(jd)
        & (jd >= _JD_MIN)
        & (jd <= _JD_MAX)
        & band_ok
        & np.isfinite(flux_dn)
        & np.isfinite(zp)
        & np.isfinite(flux_njy)
        & (flux_dn > -99999)
        & ~bad_alert[parent]
    )
    mjd = jd_to_mjd(jd)
    n = len(forced)
    idx = pa.array(parent)
    null_f = pa.nulls(n, pa.float64())
    table = pa.table(
        {
            "object_id": pa.array(objects, pa.string()).take(idx),
            "source": pa.array(np.full(n, "ztf_fp", dtype=object), pa.string()),
            "mjd": pa.array(mjd),
            "band": band,
            "mag": null_f,
            "magerr": null_f,
            "flux": pa.array(flux_njy),
            "flux_err": pa.array(unc_njy, mask=~np.isfinite(unc_njy)),
            "is_limit": pa.array(np.zeros(n, dtype=bool)),
            "candid": pa.nulls(n, pa.int64()),
            "label": pa.nulls(n, pa.string()),
            "ra": null_f,
            "dec": null_f,
            "rb": null_f,
            "drb": null_f,
            "isdiffpos": pa.nulls(n, pa.bool_()),
            "schemavsn": pa.array(versions, pa.string()).take(idx),
            "alert_candid": pa.array(alert_candids, pa.int64()).take(idx),
            "night": _nights(mjd),
            "time_scale": pa.array(np.full(n, "utc", dtype=object), pa.string()),  # jd: exposure start, UTC
        },
        schema=SCHEMA,
    )
    return table.filter(pa.array(keep)), keep


def alert_json_to_rows(alert: dict[str, Any]) -> list[dict[str, Any]]:
    """An alert posted as JSON (the Avro record, cutouts omitted) -> points. Same rules as Avro."""
    return alert_to_rows(alert)
