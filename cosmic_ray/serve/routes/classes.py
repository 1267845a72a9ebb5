"""Classes: ``GET /classes`` (reader), ``POST /classes`` and ``DELETE /classes/{name}`` (writers).

Who registered a class (``created_by``) is shown to signed-in callers only: usernames are not
given away to anonymous readers (they are half of a login).

A class registered here is stored in the event store and live on every model replica within
seconds (they poll the store's classes version).
"""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

import asyncio
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, HTTPException, Response

from cosmic_ray.core.config import Settings
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.learn.features import MODEL_SOURCES
from cosmic_ray.serve.accounts import Principal
from cosmic_ray.serve.db import ConflictError, NotFoundError, StoreError
from cosmic_ray.serve.deps import AUTH_ERRORS, Caller, Ctx, Reader, Writer
from cosmic_ray.serve.schemas import ClassIn, ClassInfo, ErrorResponse

router = APIRouter()


@router.get("/classes", response_model=list[ClassInfo], responses=AUTH_ERRORS)
async def classes(ctx: Ctx, _: Reader, caller: Caller) -> list[ClassInfo]:
    """Trained classes of the served model, then the classes registered at runtime (from the store)."""
    info = await ctx.model_info()
    registered = ctx.events.list_classes()
    names = {r.name for r in registered}
    trained = [ClassInfo(name=c, source="model") for c in info["classes"] if c not in names]
    return trained + [shown_to(caller, ClassInfo(source="registered", **r.summary())) for r in registered]


def shown_to(caller: Principal | None, info: ClassInfo) -> ClassInfo:
    """``info`` as ``caller`` may see it: without who registered it when anonymous."""
    return info if caller is not None else info.model_copy(update={"created_by": None})


@router.post(
    "/classes",
    status_code=201,
    response_model=ClassInfo,
    responses={
        409: {"model": ErrorResponse},
        413: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        **AUTH_ERRORS,
    },
)
async def add_class(body: ClassIn, ctx: Ctx, principal: Writer) -> ClassInfo:
    """Register a class from K support light curves and/or lake object ids; live on every replica within seconds."""
    n = len(body.lightcurves) + len(body.object_ids)
    if n > ctx.settings.max_support:
        raise HTTPException(
            status_code=413, detail=f"{n} support objects exceed the limit of {ctx.settings.max_support}"
        )
    info = await ctx.model_info()
    if body.name in set(info["classes"]) - set(info["registered_classes"]):
        raise HTTPException(
            status_code=409, detail=f"{body.name!r} is a trained class of model version {info['version']}"
        )
    support = []
    for lc in body.lightcurves:
        points = [p.model_dump() for p in lc.points]
        if all(p["is_limit"] for p in points):
            raise HTTPException(
                status_code=422, detail=f"support light curve {lc.object_id!r} has no detection (only upper limits)"
            )
        support.append({"object_id": lc.object_id, "points": points})
    if body.object_ids:
        found = await asyncio.to_thread(lake_support, ctx.settings, body.object_ids)
        missing = [o for o in body.object_ids if o not in found]
        if missing:
            raise HTTPException(status_code=422, detail=f"no usable light curve in the lake for {missing[:20]}")
        support.extend({"object_id": o, "points": found[o]} for o in body.object_ids)
    try:
        record = await asyncio.to_thread(ctx.events.add_class, body.name, support, principal.username)
    except ConflictError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except StoreError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    await ctx.model.sync_classes.remote()
    return ClassInfo(source="registered", **record.summary())


@router.delete(
    "/classes/{name}",
    status_code=204,
    responses={404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}, **AUTH_ERRORS},
)
async def remove_class(name: str, ctx: Ctx, _: Writer) -> Response:
    try:
        await asyncio.to_thread(ctx.events.remove_class, name)
    except NotFoundError as exc:
        info = await ctx.model_info()
        if name in info["classes"]:
            raise HTTPException(status_code=409, detail=f"{name!r} is a trained class: retrain without it") from exc
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    await ctx.model.sync_classes.remote()
    return Response(status_code=204)


def lake_support(settings: Settings, object_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Detections of the given objects in the lake (model sources only), as points by object."""
    table = Lake(settings.lake_dir).read()
    mask = pc.and_(pc.is_in(table.column("object_id"), pa.array(object_ids)), pc.invert(table.column("is_limit")))
    mask = pc.and_(mask, pc.is_in(table.column("source"), pa.array(MODEL_SOURCES)))
    table = table.filter(pc.and_(mask, pc.is_valid(table.column("mag")))).select(
        ["object_id", "mjd", "band", "mag", "magerr"]
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        out.setdefault(row.pop("object_id"), []).append({**row, "magerr": row["magerr"] or 0.0, "is_limit": False})
    return out
