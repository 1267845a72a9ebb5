"""The served model: ``GET /model`` (reader), ``POST /model/reload`` (writer).

What they answer has credentials stripped (:mod:`cosmic_ray.serve.redact`): a reload error may
name the tracking URI, and that may carry a password.
"""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

from typing import Any

from fastapi import APIRouter

from cosmic_ray.serve.deps import AUTH_ERRORS, Ctx, Reader, Writer
from cosmic_ray.serve.redact import strip_credentials_deep
from cosmic_ray.serve.schemas import ModelInfo

router = APIRouter()


@router.get("/model", response_model=ModelInfo, responses=AUTH_ERRORS)
async def model_info(ctx: Ctx, _: Reader) -> ModelInfo:
    return shown(await ctx.model_info())


@router.post("/model/reload", response_model=ModelInfo, responses=AUTH_ERRORS)
async def model_reload(ctx: Ctx, _: Writer) -> ModelInfo:
    """Check the registry now (on one replica; the others follow within ``model_poll_seconds``)."""
    await ctx.model.check_for_new_model.remote()
    return shown(await ctx.model_info())


def shown(info: dict[str, Any]) -> ModelInfo:
    """The replica's model info as callers see it: no credentials in any of its text."""
    return ModelInfo.model_validate(strip_credentials_deep(info))
