"""Positions on the sky: HEALPix indices for cone searches, angular distances, mean positions.

Objects are indexed by their nested HEALPix pixel at order :data:`HEALPIX_ORDER` (29: pixels of
~0.4 milliarcsec, the finest 64-bit order), so one integer column serves cones of any size: a cone
is covered by the pixels of a coarser order whose size suits its radius (``astropy-healpix``), and
each coarse nested pixel is one contiguous range of fine indices (``BETWEEN lo AND hi`` in SQL,
which an ordinary B-tree index answers in SQLite and PostgreSQL alike). The exact angular
distance then drops the corners of those pixels.

Example:
    >>> ranges = cone_ranges(10.0, 20.0, 10 / 3600)
    >>> lo, hi = ranges[0]
    >>> bool(lo <= healpix_index(10.0, 20.0) <= hi) or len(ranges) > 1
    True
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np

#: Nested HEALPix order of the stored index (nside 2**29).
HEALPIX_ORDER = 29
#: Coarsest order a cone is covered with (order 0 pixels are 58.6 degrees).
_MIN_QUERY_ORDER = 0
#: A cone is searched wider by this many pixel sizes of its query order (see :func:`cone_ranges`).
_PAD_PIXELS = 1.5


@cache
def _healpix(order: int) -> Any:
    """The nested ``astropy_healpix.HEALPix`` of ``order``."""
    # deferred: astropy takes ~0.5 s to import; the event store's users (CLI, replicas) import this module
    from astropy_healpix import HEALPix

    return HEALPix(nside=2**order, order="nested")


@cache
def pixel_size_deg(order: int) -> float:
    """The side of a HEALPix pixel of ``order`` (square root of its area), degrees."""
    return math.degrees(math.sqrt(4 * math.pi / (12 * 4**order)))


def _deg() -> Any:
    from astropy import units as u  # deferred: see _healpix

    return u.deg


def healpix_index(ra: np.ndarray | float, dec: np.ndarray | float) -> np.ndarray:
    """Nested HEALPix indices at :data:`HEALPIX_ORDER` of positions in degrees (int64 array)."""
    ra_a = np.atleast_1d(np.asarray(ra, dtype=float))
    dec_a = np.atleast_1d(np.asarray(dec, dtype=float))
    deg = _deg()
    return np.asarray(_healpix(HEALPIX_ORDER).lonlat_to_healpix(ra_a * deg, dec_a * deg), dtype=np.int64)


def query_order(radius_deg: float) -> int:
    """The finest order whose pixels are at least twice ``radius_deg`` across (few pixels per cone)."""
    for order in range(HEALPIX_ORDER, _MIN_QUERY_ORDER - 1, -1):
        if pixel_size_deg(order) >= 2 * radius_deg:
            return order
    return _MIN_QUERY_ORDER


def cone_ranges(ra: float, dec: float, radius_deg: float) -> list[tuple[int, int]]:
    """Inclusive ranges of :data:`HEALPIX_ORDER` indices that cover the cone (merged where adjacent).

    Every position within ``radius_deg`` of ``(ra, dec)`` has its index in one of the ranges; the
    ranges also hold positions a little outside (filter them with :func:`angular_distance_deg`).
    """
    order = query_order(radius_deg)
    # astropy-healpix's cone search can miss a pixel the cone only grazes (seen at order 13 with a
    # 10-arcsec cone): searching a cone wider by 1.5 pixel sizes (more than a pixel's centre-to-corner
    # distance) takes in every pixel that overlaps the cone itself
    pad = _PAD_PIXELS * pixel_size_deg(order)
    deg = _deg()
    pixels = np.sort(_healpix(order).cone_search_lonlat(ra * deg, dec * deg, (radius_deg + pad) * deg))
    shift = 2 * (HEALPIX_ORDER - order)
    ranges: list[tuple[int, int]] = []
    for p in pixels.tolist():
        lo, hi = p << shift, ((p + 1) << shift) - 1
        if ranges and ranges[-1][1] + 1 == lo:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((lo, hi))
    return ranges


def angular_distance_deg(
    ra1: np.ndarray | float, dec1: np.ndarray | float, ra2: np.ndarray | float, dec2: np.ndarray | float
) -> np.ndarray:
    """Great-circle distance in degrees (haversine: exact at small separations, poles and RA wrap)."""
    r1, d1, r2, d2 = (np.radians(np.asarray(x, dtype=float)) for x in (ra1, dec1, ra2, dec2))
    s = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(s, 0.0, 1.0))))


def unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """``(N, 3)`` unit vectors of positions in degrees."""
    r, d = np.radians(np.asarray(ra, dtype=float)), np.radians(np.asarray(dec, dtype=float))
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=-1)


def vector_to_radec(x: float, y: float, z: float) -> tuple[float, float]:
    """A (not necessarily unit) vector -> (ra in [0, 360), dec) in degrees."""
    ra = math.degrees(math.atan2(y, x)) % 360.0
    dec = math.degrees(math.atan2(z, math.hypot(x, y)))
    return ra, dec


def mean_position(ra: np.ndarray, dec: np.ndarray) -> tuple[float, float]:
    """The mean of positions on the sphere (right across RA 0/360 and near the poles)."""
    x, y, z = unit_vectors(ra, dec).sum(axis=0)  # (3,)
    return vector_to_radec(float(x), float(y), float(z))


def galactic_latitude(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Galactic latitude (degrees) of ICRS positions in degrees."""
    # deferred: astropy.coordinates takes ~0.5 s to import; only object summaries need it
    from astropy.coordinates import SkyCoord

    deg = _deg()
    coords = SkyCoord(ra=np.asarray(ra, dtype=float) * deg, dec=np.asarray(dec, dtype=float) * deg, frame="icrs")
    return np.asarray(coords.galactic.b.deg, dtype=float)
