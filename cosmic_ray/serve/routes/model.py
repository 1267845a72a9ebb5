"""The served model: ``GET /model`` (reader), ``POST /model/reload`` (writer)."""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

from fastapi import APIRouter

from cosmic_ray.serve.deps import AUTH_ERRORS, Ctx, Reader, Writer
from cosmic_ray.serve.schemas import ModelInfo

router = APIRouter()


@router.get("/model", response_model=ModelInfo, responses=AUTH_ERRORS)
async def model_info(ctx: Ctx, _: Reader) -> ModelInfo:
    return ModelInfo.model_validate(await ctx.model_info())


@router.post("/model/reload", response_model=ModelInfo, responses=AUTH_ERRORS)
async def model_reload(ctx: Ctx, _: Writer) -> ModelInfo:
    """Check the registry now (on one replica; the others follow within ``model_poll_seconds``)."""
    await ctx.model.check_for_new_model.remote()
    return ModelInfo.model_validate(await ctx.model_info())
