"""The parameters of ``GET /objects`` (cone search and listing) and its VOTable answer.

Two spellings of a cone: ``ra``, ``dec``, ``radius`` (degrees; JSON by default) and IVOA Simple
Cone Search 1.03's ``RA``, ``DEC``, ``SR`` (degrees; a VOTable by default, ``VERB`` 1-3 for fewer or
more columns). ``format``/``FORMAT`` picks ``json`` or ``votable`` explicitly. Bad parameters raise
:class:`ConeParameterError` with a message saying what is allowed.

Example:
    >>> q = parse_params({"RA": "10", "DEC": "-5", "SR": "0.01"}, max_radius_deg=1.0)
    >>> (q.cone, q.votable, q.verb)
    ((10.0, -5.0, 0.01), True, 2)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from cosmic_ray.core.errors import CosmicRayError
from cosmic_ray.serve.skyobjects import ObjectFilters, ObjectPage
from cosmic_ray.serve.votable import Column, votable_bytes

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


class ConeParameterError(CosmicRayError):
    """A parameter of ``GET /objects`` is missing, malformed or out of range (the message says which)."""


@dataclass(frozen=True)
class ObjectQuery:
    """``GET /objects`` parsed: a cone (or a listing when None), filters, page, answer format."""

    cone: tuple[float, float, float] | None
    filters: ObjectFilters
    limit: int
    offset: int
    votable: bool
    verb: int
    id_prefix: str | None


def _number(
    params: Mapping[str, str | None], name: str, lo: float | None = None, hi: float | None = None
) -> float | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConeParameterError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ConeParameterError(f"{name}={raw!r} is not a finite number")
    if lo is not None and value < lo:
        raise ConeParameterError(
            f"{name}={raw} is out of range: {name} >= {lo}" + (f" and <= {hi}" if hi is not None else "")
        )
    if hi is not None and value > hi:
        raise ConeParameterError(
            f"{name}={raw} is out of range: {name} <= {hi}" + (f" and >= {lo}" if lo is not None else "")
        )
    return value


def _integer(params: Mapping[str, str | None], name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConeParameterError(f"{name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise ConeParameterError(f"{name}={value} is out of range: {lo} <= {name} <= {hi}")
    return value


def _either(params: Mapping[str, str | None], lower: str, upper: str) -> tuple[str, str | None]:
    """The value of ``lower`` or its SCS spelling ``upper`` (both given and different: an error)."""
    a, b = params.get(lower), params.get(upper)
    if a is not None and b is not None and a != b:
        raise ConeParameterError(f"{lower}={a!r} and {upper}={b!r} disagree: give one of them")
    return (lower, a) if a is not None else (upper, b)


def wants_votable(params: Mapping[str, str | None]) -> bool:
    """Whether errors should be answered as a VOTable (``FORMAT=votable``, or SCS parameters without a format)."""
    fmt = params.get("format") or params.get("FORMAT")
    if fmt is not None:
        return fmt.lower() == "votable"
    return any(params.get(k) is not None for k in ("RA", "DEC", "SR"))


def parse_params(params: Mapping[str, str | None], max_radius_deg: float) -> ObjectQuery:
    """Parse the query parameters of ``GET /objects``.

    Raises:
        ConeParameterError: a parameter is missing, malformed or out of range.
    """
    fmt = params.get("format") or params.get("FORMAT")
    if fmt is not None and fmt.lower() not in ("json", "votable"):
        raise ConeParameterError(f"unknown format {fmt!r}: use json or votable")
    named = {k: _either(params, k, k.upper()) for k in ("ra", "dec")}
    named["radius"] = _either(params, "radius", "SR")
    given = {k: v for k, (_, v) in named.items() if v is not None}
    cone = None
    if given:
        if len(given) < 3:
            missing = [k for k in ("ra", "dec", "radius") if k not in given]
            raise ConeParameterError(
                f"a cone needs ra, dec and radius together (or RA, DEC, SR), in degrees: {', '.join(missing)} missing"
            )
        values = dict(named.values())  # {"ra" or "RA": raw, ...}
        ra_name, dec_name, r_name = named["ra"][0], named["dec"][0], named["radius"][0]
        ra = _number(values, ra_name, 0.0, 360.0)
        dec = _number(values, dec_name, -90.0, 90.0)
        radius = _number(values, r_name, 0.0, None)
        assert ra is not None and dec is not None and radius is not None  # all three were given
        if radius > max_radius_deg:
            raise ConeParameterError(
                f"{r_name}={radius} degrees is larger than the largest cone, {max_radius_deg} degrees "
                "(COSMIC_RAY_CONE_MAX_RADIUS_DEG): search a smaller cone"
            )
        cone = (ra % 360.0, dec, radius)
    rare_raw = params.get("rare")
    if rare_raw is not None and rare_raw.lower() not in ("true", "false", "1", "0"):
        raise ConeParameterError(f"rare={rare_raw!r}: use true or false")
    filters = ObjectFilters(
        label=params.get("class") or None,
        min_probability=_number(params, "min_probability", 0.0, 1.0),
        min_open_set=_number(params, "min_open_set", 0.0, 1.0),
        max_open_set=_number(params, "max_open_set", 0.0, 1.0),
        last_after=_number(params, "last_after"),
        last_before=_number(params, "last_before"),
        rare=None if rare_raw is None else rare_raw.lower() in ("true", "1"),
    )
    q = (params.get("q") or "").strip() or None
    if q is not None and len(q) > 128:
        raise ConeParameterError("q (an object id or its beginning) is at most 128 characters")
    return ObjectQuery(
        cone=cone,
        filters=filters,
        limit=_integer(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=_integer(params, "offset", 0, 0, 10**9),
        votable=wants_votable(params),
        verb=_integer(params, "VERB", 2, 1, 3),
        id_prefix=q,
    )


# ------------------------------------------------------------------------------------ VOTable
_VERB1 = [
    Column("object_id", "char", "meta.id;meta.main", None, "object identifier"),
    Column("ra", "double", "pos.eq.ra;meta.main", "deg", "mean right ascension of the detections (ICRS)"),
    Column("dec", "double", "pos.eq.dec;meta.main", "deg", "mean declination of the detections (ICRS)"),
    Column("distance_arcsec", "double", "pos.angDistance", "arcsec", "distance from the cone's centre"),
]
_VERB2 = [
    Column("class", "char", "src.class", None, "latest class (null until classified)"),
    Column("probability", "double", "stat.probability", None, "probability of the latest class"),
    Column("open_set_score", "double", "stat.value", None, "0..1, high = fits no known class"),
    Column("rare", "boolean", "meta.code", None, "latest class is a rare one"),
    Column("n_detections", "long", "meta.number", None, "detections in the lake"),
    Column("first_mjd", "double", "time.start", "d", "MJD of the first detection"),
    Column("last_mjd", "double", "time.end", "d", "MJD of the last detection"),
]
_VERB3 = [
    Column("n_points", "long", "meta.number", None, "points: detections, upper limits, forced photometry"),
    Column("novel", "boolean", "meta.code", None, "fits no known class"),
    Column("model_version", "char", "meta.version", None, "model that gave the latest class"),
    Column("classified_at", "char", "time.processing", None, "UTC, ISO 8601"),
    Column("gal_b", "double", "pos.galactic.lat", "deg", "Galactic latitude"),
    Column("host_mag", "double", "phot.mag", "mag", "host galaxy apparent r magnitude (AB)"),
    Column("host_color", "double", "phot.color", "mag", "host galaxy colour"),
    Column("redshift", "double", "src.redshift", None, "redshift where known"),
    Column("healpix", "long", "pos.healpix", None, "nested HEALPix index, order 29"),
    Column("sources", "char", "meta.dataset", None, "sources of the points, comma-separated"),
]


def cone_votable(page: ObjectPage, verb: int) -> bytes:
    """A Simple Cone Search answer: one row per object of ``page``, columns by ``verb`` (1-3)."""
    columns = _VERB1 + (_VERB2 if verb >= 2 else []) + (_VERB3 if verb >= 3 else [])
    rows = [{**o, "sources": ",".join(o.get("sources") or [])} for o in page.objects]
    return votable_bytes(
        columns,
        rows,
        name="objects",
        description="cosmic_ray objects in the cone, nearest first",
        infos={"total": str(page.total), "offset": str(page.offset), "limit": str(page.limit)},
    )
