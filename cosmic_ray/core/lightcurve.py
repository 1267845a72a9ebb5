"""The one light-curve schema every source is converted into.

One row per photometric point ("long" format). Magnitudes are AB; ``flux`` / ``flux_err`` are in
nanojansky (the unit is recorded in the fields' metadata), signed for difference photometry: Rubin
reports them so, ZTF's are derived from the magnitude (sign from ``isdiffpos``) once, here, with
astropy units. Upper limits have ``is_limit`` true and their limiting magnitude in ``mag``.
``time_scale`` says what ``mjd`` counts: ``utc`` (ZTF, whose ``jd`` is the exposure start, and the
default), ``tai`` (Rubin's ``midpointMjdTai``), ``tdb`` (TESS BTJD). Lake files written before the
column existed have microjansky fluxes; :func:`upgrade_legacy` reads them in nanojansky.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SCHEMA = pa.schema(
    [
        pa.field("object_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # ztf_alert, ztf_bts, tess, mast, simulated...
        pa.field("mjd", pa.float64(), nullable=False),
        pa.field("band", pa.string(), nullable=False),  # g, r, i for ZTF; <survey>_<filter> otherwise
        pa.field("mag", pa.float64()),
        pa.field("magerr", pa.float64()),
        pa.field("flux", pa.float64(), metadata={"unit": "nJy"}),  # signed for difference photometry
        pa.field("flux_err", pa.float64(), metadata={"unit": "nJy"}),
        pa.field("is_limit", pa.bool_(), nullable=False),
        pa.field("candid", pa.int64()),  # ZTF candidate id (detections only)
        pa.field("label", pa.string()),  # spectroscopic class where known
        pa.field("ra", pa.float64()),
        pa.field("dec", pa.float64()),
        pa.field("rb", pa.float64()),
        pa.field("drb", pa.float64()),
        pa.field("isdiffpos", pa.bool_()),
        pa.field("schemavsn", pa.string()),
        pa.field("alert_candid", pa.int64()),  # the alert packet this point came from
        pa.field("night", pa.string(), nullable=False),  # YYYYMMDD (UTC) of the point; lake partition
        pa.field("time_scale", pa.string()),  # of mjd: utc (default), tai (Rubin), tdb (TESS)
    ]
)

COLUMNS = SCHEMA.names

ZTF_FID_TO_BAND = {1: "g", 2: "r", 3: "i"}
# bare band letters: ZTF's g, r, i and Rubin's u, g, r, i, z, y (the same letters are the same
# photometric family); other surveys' bands are named <survey>_<filter>
BANDS = ("u", "g", "r", "i", "z", "y")
TIME_SCALES = ("utc", "tai", "tdb")
DEFAULT_TIME_SCALE = "utc"
FLUX_UNIT = "nJy"

_AB_ZERO_POINT_UJY = 3631e6  # 3631 Jy in microjansky
AB_ZP_UJY = 23.9  # AB magnitude of 1 microjansky: flux_uJy = 10 ** (-0.4 * (mag - AB_ZP_UJY))
AB_ZP_NJY = 31.4  # AB magnitude of 1 nanojansky: flux_nJy = 10 ** (-0.4 * (mag - AB_ZP_NJY))


def mag_to_flux_ujy(mag: np.ndarray, magerr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AB magnitude -> flux density in microjansky, with propagated error.

    Uses astropy's AB magnitude unit so the zero point lives in one well-kept place.
    """
    # deferred: astropy takes ~0.5 s to import and only the flux conversion needs it
    from astropy import units as u

    mag = np.asarray(mag, dtype=float)
    magerr = np.asarray(magerr, dtype=float)
    flux = (mag * u.ABmag).to_value(u.uJy)
    flux_err = np.abs(flux * magerr * math.log(10) / 2.5)
    return flux, flux_err


def mag_to_flux_njy(mag: np.ndarray, magerr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AB magnitude -> flux density in nanojansky (the lake's unit), with propagated error."""
    flux, flux_err = mag_to_flux_ujy(mag, magerr)
    return flux * 1e3, flux_err * 1e3


def flux_njy_to_mag(flux: np.ndarray, flux_err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flux in nanojansky -> AB magnitude and its error; NaN where the flux is not positive.

    A negative difference flux has no magnitude: it is a fading (or a subtraction artefact),
    never a brightening.
    """
    flux = np.asarray(flux, dtype=float)
    flux_err = np.asarray(flux_err, dtype=float)
    positive = np.isfinite(flux) & (flux > 0)
    safe = np.where(positive, flux, 1.0)
    mag = np.where(positive, AB_ZP_NJY - 2.5 * np.log10(safe), np.nan)
    magerr = np.where(positive, 2.5 / math.log(10) * np.abs(flux_err) / safe, np.nan)
    return mag, magerr


def mjd_to_night(mjd: float) -> str:
    """UTC calendar night (YYYYMMDD) of an MJD, used as the lake partition."""
    # MJD 40587 is 1970-01-01; integer days keep this fast and dependency free.
    days = int(math.floor(mjd)) - 40587
    return np.datetime64(days, "D").astype(str).replace("-", "")


def mjd_to_nights(mjd: np.ndarray) -> np.ndarray:
    """Vectorised :func:`mjd_to_night` (array of YYYYMMDD strings)."""
    days = (np.floor(np.asarray(mjd, dtype=float)) - 40587).astype("int64").astype("datetime64[D]")
    return np.char.replace(days.astype(str), "-", "")


JD_MJD_OFFSET = 2400000.5  # MJD = JD - 2400000.5 (days); the one place this number lives
TimeT = TypeVar("TimeT", float, np.ndarray)


def jd_to_mjd(jd: TimeT) -> TimeT:
    """Julian date -> modified Julian date (a float or an array; the time scale is kept)."""
    return jd - JD_MJD_OFFSET


def mjd_to_jd(mjd: TimeT) -> TimeT:
    """Modified Julian date -> Julian date (a float or an array; the time scale is kept)."""
    return mjd + JD_MJD_OFFSET


def empty_table() -> pa.Table:
    return SCHEMA.empty_table()


def rows_to_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Build a schema-conforming table from row dicts; missing optional columns become null."""
    rows = list(rows)
    columns = {name: [row.get(name) for row in rows] for name in COLUMNS}
    columns["time_scale"] = [row.get("time_scale") or DEFAULT_TIME_SCALE for row in rows]
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def conform(table: pa.Table) -> pa.Table:
    """Add missing optional columns as nulls and cast to the schema (column order included).

    A missing or null ``time_scale`` is :data:`DEFAULT_TIME_SCALE` (sources that count time
    otherwise say so on their rows).
    """
    arrays = []
    for field in SCHEMA:
        if field.name in table.column_names:
            column = table.column(field.name).cast(field.type)
            if field.name == "time_scale" and column.null_count:
                column = pc.fill_null(column, DEFAULT_TIME_SCALE)
            arrays.append(column)
        elif field.name == "time_scale":
            arrays.append(pa.array([DEFAULT_TIME_SCALE] * table.num_rows, pa.string()))
        else:
            arrays.append(pa.nulls(table.num_rows, type=field.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def upgrade_legacy(table: pa.Table) -> pa.Table:
    """Rows read from lake files written before ``time_scale`` existed, in today's units.

    Those files stored ``flux`` / ``flux_err`` in microjansky; a null ``time_scale`` marks their rows
    (every row written since has one, :func:`conform`), whose fluxes are scaled to nanojansky here.
    Tables without both columns are returned unchanged.
    """
    names = table.column_names
    if "time_scale" not in names or "flux" not in names or table.column("time_scale").null_count == 0:
        return table
    legacy = pc.is_null(table.column("time_scale"))
    for name in ("flux", "flux_err"):
        if name in names:
            column = table.column(name)
            scaled = pc.if_else(legacy, pc.multiply(pc.cast(column, pa.float64()), 1e3), column)
            table = table.set_column(names.index(name), table.schema.field(name), scaled)
    return table


def points_to_table(
    object_id: str,
    points: Iterable[Mapping[str, Any]],
    source: str = "user",
    label: str | None = None,
) -> pa.Table:
    """Light curve given as points ``{mjd, band, mag, magerr[, is_limit]}`` -> schema table."""
    rows = []
    for p in points:
        mag = float(p["mag"])
        magerr = float(p.get("magerr") or 0.0)
        flux, flux_err = mag_to_flux_njy(np.array([mag]), np.array([magerr]))
        rows.append(
            {
                "object_id": object_id,
                "source": source,
                "mjd": float(p["mjd"]),
                "band": str(p["band"]),
                "mag": mag,
                "magerr": magerr,
                "flux": float(flux[0]),
                "flux_err": float(flux_err[0]),
                "is_limit": bool(p.get("is_limit", False)),
                "label": label,
                "night": mjd_to_night(float(p["mjd"])),
            }
        )
    return rows_to_table(rows)
