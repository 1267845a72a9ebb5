"""ZTF alerts -> per-object context rows (:data:`cosmic_ray.core.context.CONTEXT_SCHEMA`).

Read from the per-alert table the parser returns (:data:`cosmic_ray.sources.ztf.ALERT_SCHEMA`,
which keeps the candidate's PS1, reference-image and Gaia fields):

* position: the candidate's ``ra``/``dec``; Galactic latitude computed from it; Milky-Way
  extinction from the SFD map where one is installed (:mod:`cosmic_ray.sources.sky`), else missing;
* host: the nearest PS1 source (``distpsnr1``) is a host only when it looks like a galaxy
  (``sgscore1`` < 0.5) and lies within ``host_max_arcsec``: ``host_mag`` = ``srmag1``,
  ``host_color`` = ``sgmag1 - srmag1`` (both measured), ``host_offset_arcsec`` = ``distpsnr1``;
* ``nuclear_dist_arcsec``: ``distnr``, the distance to the nearest reference-image source.

ZTF writes -999 (or other negative sentinels) where a match is missing: such a value is missing
here, never a number. An alert carries no redshift. ``updated_mjd`` is the alert's time, so the
newest alert of an object wins field by field when the lake merges rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from cosmic_ray.core.context import CONTEXT_SCHEMA
from cosmic_ray.sources.sky import extinction_av, galactic_latitude

#: Default of ``Settings.context_host_max_arcsec``: farthest PS1 galaxy that counts as the host.
HOST_MAX_ARCSEC = 3.0
#: PS1 star-galaxy score below which the nearest source is taken for a galaxy.
GALAXY_MAX_SGSCORE = 0.5
SOURCE = "ztf_alert"


def _column(table: pa.Table, name: str) -> np.ndarray:
    """A float column with nulls and ZTF's negative 'no match' sentinels (-999, -99) as NaN."""
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    values = np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=float)
    return np.where(np.isfinite(values) & (values > -99.0), values, np.nan)


def context_from_alerts(alerts: pa.Table, host_max_arcsec: float = HOST_MAX_ARCSEC) -> pa.Table:
    """One context row per alert of ``alerts`` (the parser's per-alert table), in CONTEXT_SCHEMA.

    Args:
        alerts: rows of :data:`cosmic_ray.sources.ztf.ALERT_SCHEMA` (missing columns read as missing).
        host_max_arcsec: farthest PS1 galaxy that counts as the host.
    """
    n = alerts.num_rows
    if n == 0:
        return CONTEXT_SCHEMA.empty_table()
    ra, dec = _column(alerts, "ra"), _column(alerts, "dec")
    dec = np.where(np.abs(dec) <= 90.0, dec, np.nan)
    ra = np.where(np.isfinite(dec), ra, np.nan)
    sgscore, dist = _column(alerts, "sgscore1"), _column(alerts, "distpsnr1")
    is_host = (sgscore >= 0) & (sgscore < GALAXY_MAX_SGSCORE) & (dist >= 0) & (dist <= host_max_arcsec)
    g, r = _column(alerts, "sgmag1"), _column(alerts, "srmag1")
    host_mag = np.where(is_host, r, np.nan)
    host_color = np.where(is_host, g - r, np.nan)  # NaN unless both were measured
    offset = np.where(is_host, dist, np.nan)
    distnr = _column(alerts, "distnr")
    mjd = _column(alerts, "mjd")

    def col(values: np.ndarray) -> pa.Array:
        return pa.array(values, pa.float64(), mask=~np.isfinite(values))

    return pa.table(
        {
            "object_id": alerts.column("object_id").cast(pa.string()),
            "ra": col(ra),
            "dec": col(dec),
            "gal_b": col(galactic_latitude(ra, dec)),
            "a_v": col(extinction_av(ra, dec)),
            "host_mag": col(host_mag),
            "host_color": col(host_color),
            "host_offset_arcsec": col(offset),
            "nuclear_dist_arcsec": col(np.where(distnr >= 0, distnr, np.nan)),
            "redshift": pa.nulls(n, pa.float64()),
            "redshift_source": pa.nulls(n, pa.string()),
            "source": pa.array([SOURCE] * n, pa.string()),
            "updated_mjd": col(mjd),
        },
        schema=CONTEXT_SCHEMA,
    )


def context_of_alert(alert_row: Mapping[str, Any], host_max_arcsec: float = HOST_MAX_ARCSEC) -> dict[str, Any]:
    """:func:`context_from_alerts` of one per-alert row (a dict of ALERT_SCHEMA fields)."""
    table = pa.Table.from_pylist([dict(alert_row)])
    return context_from_alerts(table, host_max_arcsec).to_pylist()[0]
