"""Objects of the lake: ``GET /objects/{id}/similar`` and ``GET /objects/{id}/lightcurve`` (readers).

Both are bounded per route (:mod:`cosmic_ray.serve.limits`: 503 with ``Retry-After`` when full); the
light curve reads only the object's rows and columns (the filter is pushed into the Parquet scan).
"""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

import asyncio

from fastapi import APIRouter, HTTPException, Query

from cosmic_ray.core.config import Settings
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.serve.deps import AUTH_ERRORS, Ctx, Reader
from cosmic_ray.serve.limits import BUSY, LightcurveSlot, SimilarSlot
from cosmic_ray.serve.schemas import ErrorResponse, ObjectLightCurve, SimilarResponse

router = APIRouter()
_POINT_COLUMNS = ("mjd", "band", "mag", "magerr", "is_limit", "label", "source")


@router.get(
    "/objects/{object_id}/similar",
    response_model=SimilarResponse,
    responses={404: {"model": ErrorResponse}, **AUTH_ERRORS, **BUSY},
)
async def similar(
    object_id: str, ctx: Ctx, _: Reader, __: SimilarSlot, k: int = Query(10, ge=1, le=100)
) -> SimilarResponse:
    """Find more like this: the nearest objects of the lake in the served model's embedding space."""
    found = await ctx.model.similar.remote(object_id, k)
    if found is None:
        raise HTTPException(
            status_code=404, detail=f"object {object_id!r} is neither in the lake nor a reference object"
        )
    return SimilarResponse.model_validate(found)


@router.get(
    "/objects/{object_id}/lightcurve",
    response_model=ObjectLightCurve,
    responses={404: {"model": ErrorResponse}, **AUTH_ERRORS, **BUSY},
)
async def lightcurve(object_id: str, ctx: Ctx, _: Reader, __: LightcurveSlot) -> ObjectLightCurve:
    """The object's points in the lake (detections and upper limits, every source), by time."""
    found = await asyncio.to_thread(lake_lightcurve, ctx.settings, object_id)
    if found is None:
        raise HTTPException(status_code=404, detail=f"object {object_id!r} is not in the lake")
    return found


def lake_lightcurve(settings: Settings, object_id: str) -> ObjectLightCurve | None:
    """The object's points in the lake, by time; None when it has none."""
    table = Lake(settings.lake_dir).read_objects([object_id], columns=list(_POINT_COLUMNS))
    if table.num_rows == 0:
        return None
    rows = sorted(table.to_pylist(), key=lambda r: r["mjd"])
    labels = [r["label"] for r in rows if r["label"]]
    return ObjectLightCurve(
        object_id=object_id,
        label=labels[0] if labels else None,
        sources=sorted({r["source"] for r in rows}),
        points=rows,
    )
