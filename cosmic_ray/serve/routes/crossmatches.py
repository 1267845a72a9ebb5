"""What is known near an object (readers): ``GET /objects/{id}/crossmatches``.

The answer joins what the object's latest stored ZTF alert already matched (nearest Pan-STARRS1
source and star/galaxy score, nearest Gaia source, nearest known solar-system object), the
catalogue objects within ``COSMIC_RAY_CROSSMATCH_RADIUS_ARCSEC`` (BTS, SLSN-I, TDE catalogues of
the shared data, MAST observations stored as the lake's anchors; :mod:`cosmic_ray.sources.skymatch`),
the TNS name a catalogue gives, and links out built from the position and names (never fetched).

The position is the latest stored alert's, else the mean of the object's lake points with a
position, else that of a catalogue object of that name (a BTS ZTF id, an IAU name).
"""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

import asyncio
import threading

import numpy as np
import pyarrow.compute as pc
from fastapi import APIRouter, HTTPException, Query

from cosmic_ray.core.config import Settings
from cosmic_ray.ingest.cutouts import CutoutStore
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.serve.deps import AUTH_ERRORS, Ctx, Reader
from cosmic_ray.serve.links import links_out
from cosmic_ray.serve.object_schemas import CatalogueMatchOut, Crossmatches, LinkOut
from cosmic_ray.serve.schemas import ErrorResponse
from cosmic_ray.sources.skymatch import SkyCatalogue, alert_matches, load_catalogues

router = APIRouter()
_LOCK = threading.Lock()
_CATALOGUES: dict[tuple[str, tuple[str, ...]], SkyCatalogue] = {}


def catalogues(settings: Settings) -> SkyCatalogue:
    """The catalogues, built once per (shared data folder, set of anchor files) in this process."""
    lake = Lake(settings.lake_dir)
    anchors_dir = lake.anchors_root
    files = tuple(sorted(p.name for p in anchors_dir.glob("part-*.parquet"))) if anchors_dir.is_dir() else ()
    shared = settings.shared_data_dir
    key = (str(shared), files)
    with _LOCK:
        found = _CATALOGUES.get(key)
        if found is None:
            found = load_catalogues(shared, lake.read_anchors() if files else None)
            _CATALOGUES.clear()  # one version kept
            _CATALOGUES[key] = found
    return found


def _lake_position(settings: Settings, object_id: str) -> tuple[float, float] | None:
    table = Lake(settings.lake_dir).read_objects([object_id], columns=["ra", "dec"])
    table = table.filter(pc.and_(pc.is_valid(table.column("ra")), pc.is_valid(table.column("dec"))))
    if table.num_rows == 0:
        return None
    ra = np.asarray(table.column("ra").to_numpy(zero_copy_only=False), dtype=float)
    dec = np.asarray(table.column("dec").to_numpy(zero_copy_only=False), dtype=float)
    # mean on the unit sphere: right for objects near RA 0/360
    x, y = np.cos(np.radians(dec)) * np.cos(np.radians(ra)), np.cos(np.radians(dec)) * np.sin(np.radians(ra))
    mean_ra = float(np.degrees(np.arctan2(y.mean(), x.mean())) % 360.0)
    return mean_ra, float(np.median(dec))


def object_crossmatches(settings: Settings, object_id: str, radius_arcsec: float) -> Crossmatches | None:
    """The cross-matches of ``object_id``; None when no position is known for it."""
    cats = catalogues(settings)
    alert = CutoutStore(settings.lake_dir).alert(object_id)
    if alert is None:
        stored = CutoutStore(settings.lake_dir).alerts(object_id)
        alert = stored[-1] if stored else None
    pos: tuple[float, float] | None = None
    source = ""
    if alert is not None and alert.ra is not None and alert.dec is not None:
        pos, source = (alert.ra, alert.dec), "alert"
    if pos is None:
        pos, source = _lake_position(settings, object_id), "lake"
    named = cats.named(object_id)
    if pos is None and named is not None:
        pos, source = (named.ra, named.dec), "catalogue"
    if pos is None:
        return None
    found = cats.near(pos[0], pos[1], radius_arcsec)
    tns = next((m.obj.tns_name for m in found if m.obj.tns_name), None) or (named.tns_name if named else None)
    return Crossmatches(
        object_id=object_id,
        ra=pos[0],
        dec=pos[1],
        position_from=source,
        candid=alert.candid if alert is not None else None,
        alert=alert_matches(alert.context) if alert is not None else {},
        radius_arcsec=radius_arcsec,
        matches=[
            CatalogueMatchOut(
                catalogue=m.obj.catalogue,
                name=m.obj.name,
                ra=m.obj.ra,
                dec=m.obj.dec,
                separation_arcsec=round(m.separation_arcsec, 3),
                label=m.obj.label,
                tns_name=m.obj.tns_name,
                ztf_id=m.obj.ztf_id,
            )
            for m in found
        ],
        tns_name=tns,
        links=[LinkOut(service=s, url=u) for s, u in links_out(object_id, pos[0], pos[1], tns)],
    )


@router.get(
    "/objects/{object_id}/crossmatches",
    response_model=Crossmatches,
    responses={404: {"model": ErrorResponse}, **AUTH_ERRORS},
)
async def crossmatches(
    object_id: str,
    ctx: Ctx,
    _: Reader,
    radius: float | None = Query(None, gt=0, le=600, description="arcsec; default COSMIC_RAY_CROSSMATCH_RADIUS_ARCSEC"),
) -> Crossmatches:
    """The alert's own matches (PS1, Gaia, solar system), catalogue objects nearby, the TNS name, links out."""
    radius_arcsec = radius if radius is not None else ctx.settings.crossmatch_radius_arcsec
    found = await asyncio.to_thread(object_crossmatches, ctx.settings, object_id, radius_arcsec)
    if found is None:
        raise HTTPException(
            status_code=404,
            detail=f"object {object_id!r} has no known position: not in the lake with positions, no stored alert, "
            "and no catalogue lists it",
        )
    return found
