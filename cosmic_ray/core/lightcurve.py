"""The one light-curve schema every source is converted into.

One row per photometric point ("long" format). Magnitudes are AB; ``flux`` is in microjansky,
derived from the magnitude once, here, with astropy units. Upper limits have ``is_limit`` true
and their limiting magnitude in ``mag``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

SCHEMA = pa.schema(
    [
        pa.field("object_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # ztf_alert, ztf_bts, tess, mast, simulated...
        pa.field("mjd", pa.float64(), nullable=False),
        pa.field("band", pa.string(), nullable=False),  # g, r, i for ZTF; <survey>_<filter> otherwise
        pa.field("mag", pa.float64()),
        pa.field("magerr", pa.float64()),
        pa.field("flux", pa.float64()),  # microjansky, signed for difference photometry
        pa.field("flux_err", pa.float64()),
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
    ]
)

COLUMNS = SCHEMA.names

ZTF_FID_TO_BAND = {1: "g", 2: "r", 3: "i"}
BANDS = ("g", "r", "i")

_AB_ZERO_POINT_UJY = 3631e6  # 3631 Jy in microjansky
AB_ZP_UJY = 23.9  # AB magnitude of 1 microjansky: flux_uJy = 10 ** (-0.4 * (mag - AB_ZP_UJY))


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
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def conform(table: pa.Table) -> pa.Table:
    """Add missing optional columns as nulls and cast to the schema (column order included)."""
    arrays = []
    for field in SCHEMA:
        if field.name in table.column_names:
            arrays.append(table.column(field.name).cast(field.type))
        else:
            arrays.append(pa.nulls(table.num_rows, type=field.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


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
        flux, flux_err = mag_to_flux_ujy(np.array([mag]), np.array([magerr]))
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
