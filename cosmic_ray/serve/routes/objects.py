"""Objects of the lake: ``GET /objects/{id}/similar`` and ``GET /objects/{id}/lightcurve`` (readers;
``?format=json|csv|votable``, :mod:`cosmic_ray.serve.photometry`).

Both are bounded per route (:mod:`cosmic_ray.serve.limits`: 503 with ``Retry-After`` when full); the
light curve reads only the object's rows and columns (the filter is pushed into the Parquet scan).
"""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

import asyncio

from fastapi import APIRouter, HTTPException, Query, Response

from cosmic_ray.core.config import Settings
from cosmic_ray.serve import photometry
from cosmic_ray.serve.deps import AUTH_ERRORS, Ctx, Reader
from cosmic_ray.serve.limits import BUSY, LightcurveSlot, SimilarSlot
from cosmic_ray.serve.schemas import ErrorResponse, ObjectLightCurve, SimilarResponse
from cosmic_ray.serve.votable import VOTABLE_MEDIA_TYPE

router = APIRouter()


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
    responses={
        200: {"content": {"text/csv": {}, VOTABLE_MEDIA_TYPE: {}}},
        404: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        **AUTH_ERRORS,
        **BUSY,
    },
)
async def lightcurve(
    object_id: str,
    ctx: Ctx,
    _: Reader,
    __: LightcurveSlot,
    format: str = Query("json", description="json, csv or votable"),  # noqa: A002 - the documented parameter
) -> Response | ObjectLightCurve:
    """The object's points in the lake (detections, upper limits and forced photometry, every source), by
    time, each with its band, kind, units, time scale and source: JSON, CSV or a VOTable (a download)."""
    fmt = format.lower()
    if fmt not in photometry.FORMATS:
        raise HTTPException(
            status_code=422, detail=f"unknown format {format!r}: use one of {', '.join(photometry.FORMATS)}"
        )
    rows = await asyncio.to_thread(photometry.object_photometry, ctx.settings, object_id)
    if not rows:
        raise HTTPException(status_code=404, detail=f"object {object_id!r} is not in the lake")
    if fmt == "json":
        return _json_lightcurve(object_id, rows)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in object_id)
    if fmt == "csv":
        body, media, ext = photometry.to_csv(rows).encode(), "text/csv; charset=utf-8", "csv"
    else:
        body, media, ext = await asyncio.to_thread(photometry.to_votable, object_id, rows), VOTABLE_MEDIA_TYPE, "xml"
    return Response(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{safe}_lightcurve.{ext}"'}
    )


def _json_lightcurve(object_id: str, rows: list[photometry.PhotometryRow]) -> ObjectLightCurve:
    labels = [r["label"] for r in rows if r["label"]]
    return ObjectLightCurve(
        object_id=object_id,
        label=labels[0] if labels else None,
        sources=sorted({r["source"] for r in rows}),
        points=photometry.to_json_points(rows),  # type: ignore[arg-type]  # validated into PointOut
        units={
            "mjd": "d",
            "mag": "mag (AB)",
            "magerr": "mag",
            "flux": rows[0]["flux_unit"],
            "flux_err": rows[0]["flux_unit"],
        },
    )


def lake_lightcurve(settings: Settings, object_id: str) -> ObjectLightCurve | None:
    """The object's points in the lake, by time; None when it has none."""
    rows = photometry.object_photometry(settings, object_id)
    return _json_lightcurve(object_id, rows) if rows else None
