"""Where an object sits on the sky, as context: Galactic latitude and Milky-Way extinction.

Galactic latitude is computed with astropy's ICRS -> Galactic rotation (read once, applied with numpy). Extinction comes from the SFD dust map through the
``dustmaps`` package, and only when that package is importable and its map file is installed
(``dustmaps.sfd.fetch()`` puts it in dustmaps' data folder); otherwise it is missing (NaN),
never a guessed value.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: A_V per unit SFD E(B-V): Schlafly & Finkbeiner (2011, Table 6, Landolt V, R_V = 3.1).
AV_PER_SFD_EBV = 2.742


@functools.lru_cache(maxsize=1)
def _icrs_to_galactic() -> np.ndarray:
    """(3, 3) astropy's ICRS -> Galactic rotation, read off once by transforming the unit vectors.

    The transformation is a fixed rotation; applying it with numpy costs microseconds a point
    instead of a SkyCoord transformation per call (the ``/predict`` hot path converts one alert).
    """
    # deferred: astropy.coordinates takes ~1 s to import; most callers never need it
    from astropy.coordinates import CartesianRepresentation, SkyCoord

    axes = SkyCoord(CartesianRepresentation(np.eye(3)), frame="icrs").galactic.cartesian.xyz.value  # (3, 3)
    return np.asarray(axes, dtype=float)  # column i: the ICRS unit vector i in Galactic coordinates


def galactic_latitude(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """(N,) ICRS degrees -> (N,) Galactic latitude in degrees; NaN where a coordinate is missing or impossible."""
    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90.0)
    out = np.full(ra.shape, np.nan)
    if ok.any():
        a, d = np.radians(ra[ok]), np.radians(dec[ok])
        xyz = np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])  # (3, M) ICRS unit vectors
        z = _icrs_to_galactic()[2] @ xyz  # (M,) Galactic z component
        out[ok] = np.degrees(np.arcsin(np.clip(z, -1.0, 1.0)))
    return out


@functools.lru_cache(maxsize=1)
def _sfd_query() -> Any | None:
    """The SFD map query, or None when dustmaps or its map file is not installed (checked once)."""
    try:
        # deferred: optional dependency; absent here means extinction stays missing
        from dustmaps.sfd import SFDQuery

        return SFDQuery()
    except Exception as exc:  # noqa: BLE001 - ImportError, or the map file missing (OSError/ValueError by version)
        log.info("no SFD dust map installed (%s: %s): extinction A_V stays missing", type(exc).__name__, exc)
        return None


def extinction_av(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """(N,) ICRS degrees -> (N,) Milky-Way A_V (magnitudes) from SFD; all NaN without an installed map."""
    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    out = np.full(ra.shape, np.nan)
    query = _sfd_query()
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90.0)
    if query is None or not ok.any():
        return out
    # deferred: as in galactic_latitude
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    ebv = np.asarray(query(SkyCoord(ra=(ra[ok] % 360.0) * u.deg, dec=dec[ok] * u.deg, frame="icrs")), dtype=float)
    out[ok] = AV_PER_SFD_EBV * ebv
    return out


def dust_map_installed() -> bool:
    """Whether :func:`extinction_av` can give values here."""
    return _sfd_query() is not None
