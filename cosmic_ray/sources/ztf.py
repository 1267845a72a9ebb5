"""ZTF alert packets (Avro, schema versions 2.0 to 4.02) -> light-curve points.

Shape shared by every source: ``build_request`` (what would be read, no I/O beyond listing),
``fetch`` (raw bytes), ``parse`` (schema table + quarantined records with reasons).

Light curve of an alert = the triggering candidate + ``prv_candidates`` (detections have a
``candid``; upper limits do not and carry ``diffmaglim``) + ``fp_hists`` forced photometry
(schema >= 4.0). Difference flux is signed by ``isdiffpos``.
"""

from __future__ import annotations

import io
import logging
import math
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa

from cosmic_ray.errors import BadAlertError, SourceError
from cosmic_ray.lightcurve import ZTF_FID_TO_BAND, jd_to_mjd, mjd_to_night, rows_to_table

log = logging.getLogger(__name__)

NAME = "ztf"
AB_ZP_UJY = 23.9  # AB magnitude of 1 microjansky
_REQUIRED = ("objectId", "candid", "candidate")


@dataclass(frozen=True)
class RawInput:
    """One unit of raw input: a file's bytes (or a tarball member's), named for quarantine."""

    name: str
    data: bytes


@dataclass(frozen=True)
class ZtfRequest:
    """What an ingest would read: Avro files and nightly tarballs."""

    avro_files: tuple[Path, ...]
    tarballs: tuple[Path, ...] = ()

    @property
    def count(self) -> int:
        return len(self.avro_files) + len(self.tarballs)


@dataclass
class ParseResult:
    table: pa.Table
    alerts: int = 0
    quarantined: list[tuple[str, str]] = field(default_factory=list)  # (input name, reason)


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
    with tar:
        try:
            for member in tar:
                if not member.isfile() or not member.name.endswith(".avro"):
                    continue
                handle = tar.extractfile(member)
                if handle is not None:
                    yield RawInput(f"{name}!{member.name}", handle.read())
        except (tarfile.TarError, EOFError, OSError) as exc:
            log.warning("tarball %s is truncated: %s", name, exc)
            yield RawInput(f"{name}!<truncated>", b"")


def read_records(data: bytes) -> list[dict[str, Any]]:
    """Decode an Avro container file's records.

    Raises:
        BadAlertError: the bytes are not a readable Avro container.
    """
    try:
        return list(fastavro.reader(io.BytesIO(data)))
    except Exception as exc:  # fastavro raises several unrelated types on corrupt input
        raise BadAlertError(f"not a readable Avro container: {type(exc).__name__}: {exc}") from exc


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _isdiffpos(value: Any) -> bool | None:
    if value is None:
        return None
    return str(value).lower() in ("t", "1", "true")


def _detection_row(obj: str, cand: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any] | None:
    mag = _finite(cand.get("magpsf"))
    err = _finite(cand.get("sigmapsf"))
    jd = _finite(cand.get("jd"))
    band = ZTF_FID_TO_BAND.get(cand.get("fid"))
    if mag is None or jd is None or band is None:
        return None
    if err is None or err < 0:
        return None
    sign = 1.0 if _isdiffpos(cand.get("isdiffpos")) is not False else -1.0
    flux = sign * 10 ** (-0.4 * (mag - AB_ZP_UJY))
    mjd = jd_to_mjd(jd)
    return {
        "object_id": obj,
        "source": "ztf_alert",
        "mjd": mjd,
        "band": band,
        "mag": mag,
        "magerr": err,
        "flux": flux,
        "flux_err": abs(flux) * err * math.log(10) / 2.5,
        "is_limit": False,
        "candid": cand.get("candid"),
        "ra": _finite(cand.get("ra")),
        "dec": _finite(cand.get("dec")),
        "rb": _finite(cand.get("rb")),
        "drb": _finite(cand.get("drb")),
        "isdiffpos": _isdiffpos(cand.get("isdiffpos")),
        "night": mjd_to_night(mjd),
        **meta,
    }


def _limit_row(obj: str, cand: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any] | None:
    lim = _finite(cand.get("diffmaglim"))
    jd = _finite(cand.get("jd"))
    band = ZTF_FID_TO_BAND.get(cand.get("fid"))
    if lim is None or jd is None or band is None:
        return None
    mjd = jd_to_mjd(jd)
    return {
        "object_id": obj,
        "source": "ztf_alert",
        "mjd": mjd,
        "band": band,
        "mag": lim,
        "is_limit": True,
        "night": mjd_to_night(mjd),
        **meta,
    }


def _forced_row(obj: str, fp: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any] | None:
    jd = _finite(fp.get("jd"))
    band = ZTF_FID_TO_BAND.get(fp.get("fid"))
    flux_dn = _finite(fp.get("forcediffimflux"))
    flux_dn_err = _finite(fp.get("forcediffimfluxunc"))
    zp = _finite(fp.get("magzpsci"))
    if jd is None or band is None or flux_dn is None or zp is None or flux_dn <= -99999:
        return None
    scale = 10 ** (-0.4 * (zp - AB_ZP_UJY))  # DN -> microjansky
    mjd = jd_to_mjd(jd)
    return {
        "object_id": obj,
        "source": "ztf_fp",
        "mjd": mjd,
        "band": band,
        "flux": flux_dn * scale,
        "flux_err": abs(flux_dn_err * scale) if flux_dn_err is not None else None,
        "is_limit": False,
        "night": mjd_to_night(mjd),
        **meta,
    }


def alert_to_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """All light-curve points carried by one decoded alert record.

    Raises:
        BadAlertError: the record is not a ZTF alert (foreign schema) or its candidate is unusable.
    """
    missing = [key for key in _REQUIRED if key not in record]
    if missing or not isinstance(record.get("candidate"), dict):
        raise BadAlertError(f"not a ZTF alert: missing {missing or ['candidate']}")
    obj = str(record["objectId"])
    meta = {"schemavsn": str(record.get("schemavsn", "")), "alert_candid": record.get("candid")}
    first = _detection_row(obj, record["candidate"], meta)
    if first is None:
        raise BadAlertError(f"alert {record.get('candid')} of {obj}: candidate has no usable photometry")
    rows = [first]
    for prv in record.get("prv_candidates") or []:
        row = _detection_row(obj, prv, meta) if prv.get("candid") is not None else _limit_row(obj, prv, meta)
        if row is not None:
            rows.append(row)
    for fp in record.get("fp_hists") or []:
        row = _forced_row(obj, fp, meta)
        if row is not None:
            rows.append(row)
    return rows


def parse(raw: RawInput) -> ParseResult:
    """Decode one Avro file into schema rows; bad files/records are quarantined, never raised."""
    try:
        records = read_records(raw.data)
    except BadAlertError as exc:
        return ParseResult(table=rows_to_table([]), quarantined=[(raw.name, str(exc))])
    rows: list[dict[str, Any]] = []
    quarantined: list[tuple[str, str]] = []
    alerts = 0
    for i, record in enumerate(records):
        try:
            rows.extend(alert_to_rows(record))
            alerts += 1
        except BadAlertError as exc:
            quarantined.append((f"{raw.name}#{i}", str(exc)))
    return ParseResult(table=rows_to_table(rows), alerts=alerts, quarantined=quarantined)


def alert_json_to_rows(alert: dict[str, Any]) -> list[dict[str, Any]]:
    """An alert posted as JSON (the Avro record, cutouts omitted) -> points. Same rules as Avro."""
    return alert_to_rows(alert)
