"""Objects on the sky: ``GET /objects`` (cone search, IVOA Simple Cone Search, listing) and
``GET /objects/{id}`` (an object's summary), over the event store's object table.

JSON answers 422 with a message on bad parameters; a VOTable request (``FORMAT=votable``, or the
SCS parameters ``RA``/``DEC``/``SR`` without a format) is answered a VOTable even then: HTTP 200
with ``<INFO name="QUERY_STATUS" value="ERROR">``, as Simple Cone Search 1.03 clients expect.
"""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

import asyncio
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Response
from sqlalchemy.engine import Engine

from cosmic_ray.core.config import Settings
from cosmic_ray.core.sky import healpix_index
from cosmic_ray.ingest.objects import lake_summaries
from cosmic_ray.serve.conesearch import ConeParameterError, ObjectQuery, cone_votable, parse_params, wants_votable
from cosmic_ray.serve.deps import AUTH_ERRORS, Ctx, Reader
from cosmic_ray.serve.schemas import ErrorResponse
from cosmic_ray.serve.skyobjects import ObjectPage, ObjectTable
from cosmic_ray.serve.skyschemas import ConeQueryOut, ObjectDetail, ObjectPageOut
from cosmic_ray.serve.votable import VOTABLE_MEDIA_TYPE, error_votable

router = APIRouter()

_DEG = "degrees"


def _votable(body: bytes) -> Response:
    return Response(body, media_type=VOTABLE_MEDIA_TYPE)


def _search(table: ObjectTable, query: ObjectQuery) -> ObjectPage:
    if query.cone is not None:
        ra, dec, radius = query.cone
        return table.cone(ra, dec, radius, query.filters, query.limit, query.offset)
    if query.id_prefix is not None:
        found = table.search_ids(query.id_prefix, limit=query.offset + query.limit)
        return ObjectPage(len(found), query.offset, query.limit, found[query.offset :])
    return table.listing(query.filters, query.limit, query.offset)


@router.get(
    "/objects",
    response_model=ObjectPageOut,
    responses={200: {"content": {VOTABLE_MEDIA_TYPE: {}}}, 422: {"model": ErrorResponse}, **AUTH_ERRORS},
)
async def search_objects(
    ctx: Ctx,
    _: Reader,
    ra: str | None = Query(None, description=f"Cone centre, right ascension in {_DEG} (0-360)."),
    dec: str | None = Query(None, description=f"Cone centre, declination in {_DEG} (-90-90)."),
    radius: str | None = Query(None, description=f"Cone radius in {_DEG} (at most COSMIC_RAY_CONE_MAX_RADIUS_DEG)."),
    RA: str | None = Query(None, description="Simple Cone Search spelling of ra (answers a VOTable)."),
    DEC: str | None = Query(None, description="Simple Cone Search spelling of dec."),
    SR: str | None = Query(None, description="Simple Cone Search spelling of radius."),
    VERB: str | None = Query(None, description="VOTable columns: 1 few, 2 (default) more, 3 all."),
    format: str | None = Query(None, description="json or votable (default: json; votable with RA/DEC/SR)."),
    FORMAT: str | None = Query(None, description="Spelling of format."),
    label: str | None = Query(None, alias="class", description="Only objects whose latest class is this."),
    min_probability: str | None = Query(None, description="Latest class's probability at least this (0-1)."),
    min_open_set: str | None = Query(None, description="Open-set score at least this (0-1)."),
    max_open_set: str | None = Query(None, description="Open-set score at most this (0-1)."),
    last_after: str | None = Query(None, description="Last detection at or after this MJD."),
    last_before: str | None = Query(None, description="Last detection at or before this MJD."),
    rare: str | None = Query(None, description="true: only rare ones; false: only others."),
    q: str | None = Query(None, description="Without a cone: objects whose id starts with this."),
    limit: str | None = Query(None, description="Page size (1-1000, default 100)."),
    offset: str | None = Query(None, description="Objects to skip (pagination)."),
) -> Any:
    """Cone search (nearest first), or, without a cone, the objects by last detection (newest first);
    filtered by class, probability, open-set score, last detection and rarity; paginated."""
    params: dict[str, str | None] = {
        "ra": ra,
        "dec": dec,
        "radius": radius,
        "RA": RA,
        "DEC": DEC,
        "SR": SR,
        "VERB": VERB,
        "format": format,
        "FORMAT": FORMAT,
        "class": label,
        "min_probability": min_probability,
        "min_open_set": min_open_set,
        "max_open_set": max_open_set,
        "last_after": last_after,
        "last_before": last_before,
        "rare": rare,
        "q": q,
        "limit": limit,
        "offset": offset,
    }
    try:
        query = parse_params(params, ctx.settings.cone_max_radius_deg)
    except ConeParameterError as exc:
        if wants_votable(params):
            return _votable(error_votable(str(exc)))
        raise HTTPException(status_code=422, detail=str(exc)) from None
    page = await asyncio.to_thread(_search, ObjectTable(ctx.events.engine), query)
    if query.votable:
        return _votable(await asyncio.to_thread(cone_votable, page, query.verb))
    following = page.offset + len(page.objects)
    return ObjectPageOut.model_validate(
        {
            "total": page.total,
            "offset": page.offset,
            "limit": page.limit,
            "next_offset": following if following < page.total else None,
            "cone": None
            if query.cone is None
            else ConeQueryOut(ra=query.cone[0], dec=query.cone[1], radius=query.cone[2]),
            "objects": page.objects,
        }
    )


def object_detail(settings: Settings, engine: Engine, object_id: str) -> ObjectDetail | None:
    """The object's row of the object table, else its summary from the lake now; None when neither has it."""
    record = ObjectTable(engine).get(object_id)
    indexed = record is not None
    if record is None:
        found = lake_summaries(settings.lake_dir, [object_id])
        if not found:
            return None
        s = found[0]
        hpx = int(healpix_index(s.ra, s.dec)[0]) if s.ra is not None and s.dec is not None else None
        record = {**asdict(s), "healpix": hpx, "class": None, "probability": None, "probabilities": None}
        record.update(open_set_score=None, rare=None, novel=None, model_version=None, classified_at=None)
    path = f"/objects/{quote(object_id, safe='')}"
    links = {f"lightcurve_{f}": f"{path}/lightcurve?format={f}" for f in ("json", "csv", "votable")}
    links["similar"] = f"{path}/similar"
    return ObjectDetail.model_validate({**record, "in_object_table": indexed, "links": links})


@router.get(
    "/objects/{object_id}",
    response_model=ObjectDetail,
    responses={404: {"model": ErrorResponse}, **AUTH_ERRORS},
)
async def object_summary(object_id: str, ctx: Ctx, _: Reader) -> ObjectDetail:
    """An object's summary: position, HEALPix index, first/last detection, points, latest class and
    probabilities, open-set score, context (Galactic latitude, host), and links to its light curve."""
    found = await asyncio.to_thread(object_detail, ctx.settings, ctx.events.engine, object_id)
    if found is None:
        raise HTTPException(status_code=404, detail=f"object {object_id!r} is neither in the object table nor the lake")
    return found
