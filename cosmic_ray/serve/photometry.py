"""An object's photometry for download: detections, upper limits and forced photometry, each row
with its band, kind, units, time scale and source, as JSON rows, CSV or a VOTable.

Units come from the lake schema: the ``flux`` field's metadata (``unit``) when it has one, else
microjansky (the schema's documented unit). Times are MJD; the time scale is the lake's
``time_scale`` column when the schema has one, else UTC (ZTF alert and forced-photometry times)
or TDB (TESS's barycentric times).

Example:
    >>> rows = object_photometry(Settings(home="/tmp/h"), "ZTF21abiuvdk")   # doctest: +SKIP
    >>> to_csv(rows).splitlines()[0].split(",")[:4]                          # doctest: +SKIP
    ['object_id', 'mjd', 'time_scale', 'band']
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any, TypedDict

from cosmic_ray.core.config import Settings
from cosmic_ray.core.lightcurve import SCHEMA
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.serve.votable import Column, votable_bytes

#: Formats of ``GET /objects/{id}/lightcurve``.
FORMATS = ("json", "csv", "votable")
_READ_COLUMNS = ("mjd", "band", "mag", "magerr", "flux", "flux_err", "is_limit", "label", "source", "candid")
_FORCED_SOURCES = ("ztf_fp",)


class PhotometryRow(TypedDict):
    """One row of a light-curve download."""

    object_id: str
    mjd: float
    time_scale: str
    band: str
    kind: str  # detection, upper_limit, forced
    mag: float | None
    magerr: float | None
    mag_system: str
    flux: float | None
    flux_err: float | None
    flux_unit: str
    source: str
    candid: int | None
    label: str | None


#: The columns of the CSV and VOTable answers, in order (the keys of :class:`PhotometryRow`).
COLUMNS: tuple[str, ...] = tuple(PhotometryRow.__annotations__)


def flux_unit() -> str:
    """The lake's flux unit (``uJy`` unless the schema's ``flux`` field says otherwise)."""
    meta = SCHEMA.field("flux").metadata or {}
    raw = (meta.get(b"unit") or meta.get(b"units") or b"").decode().strip()
    aliases = {"microjansky": "uJy", "µjy": "uJy", "ujy": "uJy", "nanojansky": "nJy", "njy": "nJy"}
    return aliases.get(raw.lower(), raw) if raw else "uJy"


def default_time_scale(source: str) -> str:
    """The time scale of a source's MJDs when the lake does not say: TESS is TDB, the rest UTC."""
    return "tdb" if source.startswith("tess") else "utc"


def kind_of(source: str, is_limit: bool) -> str:
    if is_limit:
        return "upper_limit"
    return "forced" if source in _FORCED_SOURCES else "detection"


def object_photometry(settings: Settings, object_id: str) -> list[PhotometryRow]:
    """The object's rows in the lake, by time (then band); empty when the lake has none."""
    has_scale = "time_scale" in SCHEMA.names
    columns = [*_READ_COLUMNS, *(["time_scale"] if has_scale else [])]
    table = Lake(settings.lake_dir).read_objects([object_id], columns=columns)
    unit = flux_unit()
    rows: list[PhotometryRow] = []
    for r in table.to_pylist():
        source = str(r["source"])
        rows.append(
            PhotometryRow(
                object_id=object_id,
                mjd=float(r["mjd"]),
                time_scale=str(r.get("time_scale") or default_time_scale(source)),
                band=str(r["band"]),
                kind=kind_of(source, bool(r["is_limit"])),
                mag=r["mag"],
                magerr=r["magerr"],
                mag_system="AB",
                flux=r["flux"],
                flux_err=r["flux_err"],
                flux_unit=unit,
                source=source,
                candid=r["candid"],
                label=r["label"],
            )
        )
    rows.sort(key=lambda p: (p["mjd"], p["band"], p["kind"]))
    return rows


def to_csv(rows: Iterable[PhotometryRow]) -> str:
    """CSV with a header of :data:`COLUMNS`; an empty cell is a null."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def _columns(unit: str) -> list[Column]:
    return [
        Column("object_id", "char", "meta.id;meta.main"),
        Column("mjd", "double", "time.epoch", "d", "Modified Julian Date of the observation (time scale: time_scale)"),
        Column("time_scale", "char", "time.scale", None, "time scale of mjd (utc, tdb, ...)"),
        Column("band", "char", "instr.bandpass", None, "g, r, i for ZTF; <survey>_<filter> otherwise"),
        Column("kind", "char", "meta.code", None, "detection, upper_limit (mag is the limit) or forced"),
        Column("mag", "double", "phot.mag", "mag", "AB magnitude (the limiting magnitude of an upper limit)"),
        Column("magerr", "double", "stat.error;phot.mag", "mag"),
        Column("mag_system", "char", "meta.code", None, "photometric system of mag"),
        Column("flux", "double", "phot.flux.density", unit, "flux density; signed for difference photometry"),
        Column("flux_err", "double", "stat.error;phot.flux.density", unit),
        Column("flux_unit", "char", "meta.unit"),
        Column("source", "char", "meta.dataset", None, "where the row came from (ztf_alert, ztf_fp, ...)"),
        Column("candid", "long", "meta.id", None, "ZTF candidate id of a detection"),
        Column("label", "char", "src.class", None, "spectroscopic class where known"),
    ]


def to_votable(object_id: str, rows: list[PhotometryRow]) -> bytes:
    """A VOTable of the rows (each row says its time scale; an INFO ``time_scale`` when all share one).

    No TIMESYS element: astropy 8 warns (W54) on reading one back, whatever the file's version.
    """
    scales = sorted({r["time_scale"] for r in rows})
    unit = rows[0]["flux_unit"] if rows else flux_unit()
    return votable_bytes(
        _columns(unit),
        list(rows),
        name="lightcurve",
        description=f"Photometry of {object_id}: detections, upper limits and forced photometry.",
        infos={"object_id": object_id, "time_scale": ",".join(scales)},
    )


def to_json_points(rows: Iterable[PhotometryRow]) -> list[dict[str, Any]]:
    """Rows as the JSON answer's ``points``."""
    return [dict(r, is_limit=r["kind"] == "upper_limit") for r in rows]
