"""Liveness and Prometheus metrics: ``GET /healthz``, ``GET /metrics``.

``/metrics`` is a read like any other: open, unless ``COSMIC_RAY_READ_REQUIRES_AUTH`` (then the
scraper presents an API token, ``Authorization: Bearer ...``).
"""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

from fastapi import APIRouter, Response

from cosmic_ray.serve import metrics
from cosmic_ray.serve.deps import AUTH_ERRORS, Ctx, Reader
from cosmic_ray.serve.schemas import Health

router = APIRouter()


@router.get("/healthz", response_model=Health)
async def healthz(ctx: Ctx) -> Health:
    info = await ctx.model_info()
    return Health(status="ok", model_version=info["version"])


@router.get("/metrics", include_in_schema=False, responses=AUTH_ERRORS)
async def prometheus(ctx: Ctx, caller: Reader) -> Response:
    try:
        ctx.metrics.model_version.set(float((await ctx.model_info())["version"]))
    except (ValueError, KeyError):
        pass
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
