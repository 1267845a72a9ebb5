"""Liveness and Prometheus metrics: ``GET /healthz``, ``GET /metrics``."""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

from fastapi import APIRouter, Response

from cosmic_ray.serve import metrics
from cosmic_ray.serve.deps import Ctx
from cosmic_ray.serve.schemas import Health

router = APIRouter()


@router.get("/healthz", response_model=Health)
async def healthz(ctx: Ctx) -> Health:
    info = await ctx.model_info()
    return Health(status="ok", model_version=info["version"])


@router.get("/metrics", include_in_schema=False)
async def prometheus(ctx: Ctx) -> Response:
    try:
        ctx.metrics.model_version.set(float((await ctx.model_info())["version"]))
    except (ValueError, KeyError):
        pass
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
