"""Object summaries from the lake: one :class:`ObjectSummary` per object, for the object table.

Position is the mean of the object's detections that carry one (ZTF alerts do; catalogue light
curves do not, then the lake's context table gives it), first/last detection and point counts
come from the points, and the context (Galactic latitude, host galaxy, redshift) from the lake's
context table (``lake/_context``, :data:`cosmic_ray.core.context.CONTEXT_SCHEMA`) when it exists.
Galactic latitude is computed from the position where the context has none.

Example:
    >>> from cosmic_ray.ingest.lake import Lake
    >>> summaries = summarise(Lake("/tmp/lake").read_objects(["ZTF21abiuvdk"], columns=list(SUMMARY_COLUMNS)))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cosmic_ray.core.sky import galactic_latitude, unit_vectors, vector_to_radec
from cosmic_ray.ingest import context as context_table
from cosmic_ray.ingest.lake import Lake

log = logging.getLogger(__name__)

#: The lake columns a summary needs.
SUMMARY_COLUMNS: tuple[str, ...] = ("object_id", "source", "mjd", "is_limit", "ra", "dec")
_CONTEXT_FIELDS = ("ra", "dec", "gal_b", "host_mag", "host_color", "redshift")
_IDS_PER_READ = 2_000  # objects per filtered lake read; more than this at once: one full read


@dataclass(frozen=True)
class ObjectSummary:
    """One object's row of the object table, as far as the lake knows it (class fields are the live path's)."""

    object_id: str
    ra: float | None
    dec: float | None
    n_points: int
    n_detections: int
    first_mjd: float | None
    last_mjd: float | None
    sources: list[str] = field(default_factory=list)
    gal_b: float | None = None
    host_mag: float | None = None
    host_color: float | None = None
    redshift: float | None = None


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def read_context(lake_root: Path | str) -> dict[str, dict[str, float | None]]:
    """The lake's merged context table by object id (:func:`cosmic_ray.ingest.context.read_context`); empty when none."""
    try:
        table = context_table.read_context(lake_root)
    except (OSError, pa.ArrowInvalid) as exc:
        log.warning("context table of %s unreadable (%s): objects get no context", lake_root, exc)
        return {}
    fields = [f for f in _CONTEXT_FIELDS if f in table.column_names]
    out: dict[str, dict[str, float | None]] = {}
    for row in table.select(["object_id", *fields]).to_pylist():
        out[row["object_id"]] = {k: _finite(row[k]) for k in fields if row[k] is not None}
    return out


def summarise(points: pa.Table, context: Mapping[str, Mapping[str, float | None]] | None = None) -> list[ObjectSummary]:
    """One summary per object of ``points`` (lake rows with at least :data:`SUMMARY_COLUMNS`)."""
    if points.num_rows == 0:
        return []
    context = context or {}
    ids = points.column("object_id").to_numpy(zero_copy_only=False).astype(str)
    mjd = points.column("mjd").to_numpy(zero_copy_only=False).astype(float)
    limit = points.column("is_limit").fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    ra = points.column("ra").to_numpy(zero_copy_only=False).astype(float)  # nulls -> nan
    dec = points.column("dec").to_numpy(zero_copy_only=False).astype(float)
    sources = points.column("source").to_numpy(zero_copy_only=False).astype(str)
    order = np.argsort(ids, kind="stable")
    ids, mjd, limit, ra, dec, sources = (a[order] for a in (ids, mjd, limit, ra, dec, sources))
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    positioned = ~limit & np.isfinite(ra) & np.isfinite(dec)
    vectors = np.zeros((len(ids), 3))  # (N, 3) unit vectors of the positioned detections, 0 elsewhere
    vectors[positioned] = unit_vectors(ra[positioned], dec[positioned])
    out: list[ObjectSummary] = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        object_id = str(ids[s])
        det = ~limit[s:e]
        ctx = context.get(object_id, {})
        pos: tuple[float | None, float | None] = (None, None)
        if positioned[s:e].any():
            x, y, z = vectors[s:e].sum(axis=0)
            pos = vector_to_radec(float(x), float(y), float(z))
        elif ctx.get("ra") is not None and ctx.get("dec") is not None:
            pos = (float(ctx["ra"]) % 360.0, float(ctx["dec"]))  # type: ignore[arg-type]  # checked above
        det_mjd = mjd[s:e][det]
        out.append(
            ObjectSummary(
                object_id=object_id,
                ra=pos[0],
                dec=pos[1],
                n_points=int(e - s),
                n_detections=int(det.sum()),
                first_mjd=float(det_mjd.min()) if det_mjd.size else None,
                last_mjd=float(det_mjd.max()) if det_mjd.size else None,
                sources=sorted(set(sources[s:e].tolist())),
                gal_b=ctx.get("gal_b"),
                host_mag=ctx.get("host_mag"),
                host_color=ctx.get("host_color"),
                redshift=ctx.get("redshift"),
            )
        )
    return _fill_gal_b(out)


def _fill_gal_b(summaries: list[ObjectSummary]) -> list[ObjectSummary]:
    """Galactic latitude from the position where the context gave none."""
    need = [i for i, s in enumerate(summaries) if s.gal_b is None and s.ra is not None and s.dec is not None]
    if not need:
        return summaries
    b = galactic_latitude(
        np.array([summaries[i].ra for i in need], dtype=float), np.array([summaries[i].dec for i in need], dtype=float)
    )
    out = list(summaries)
    for i, value in zip(need, b.tolist(), strict=True):
        out[i] = replace(out[i], gal_b=float(value))
    return out


def lake_summaries(lake_root: Path | str, object_ids: Iterable[str] | None = None) -> list[ObjectSummary]:
    """Summaries of ``object_ids`` (every object of the lake when None) from the lake's points and context."""
    lake = Lake(lake_root)
    context = read_context(lake_root)
    wanted = None if object_ids is None else sorted(set(object_ids))
    if wanted is not None and not wanted:
        return []
    if wanted is None or len(wanted) > _IDS_PER_READ:
        points = lake.read().select(list(SUMMARY_COLUMNS))
        if wanted is not None:
            points = points.filter(pc.is_in(points.column("object_id"), pa.array(wanted)))
    else:
        points = lake.read_objects(wanted, columns=list(SUMMARY_COLUMNS))
    return summarise(points, context)
