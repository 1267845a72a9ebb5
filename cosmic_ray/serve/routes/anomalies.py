"""The night's anomaly ranking, tuned by expert answers: ``GET /candidates/anomalous`` (readers)."""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from cosmic_ray.serve.deps import AUTH_ERRORS, Ctx, Reader
from cosmic_ray.serve.feedback_schemas import AnomalyRankingOut
from cosmic_ray.serve.labels import Labels
from cosmic_ray.serve.limits import BUSY, bounded

router = APIRouter()
AnomalousSlot = Annotated[None, Depends(bounded("anomalous"))]


@router.get("/candidates/anomalous", response_model=AnomalyRankingOut, responses={**AUTH_ERRORS, **BUSY})
async def anomalous(
    ctx: Ctx,
    _: Reader,
    __: AnomalousSlot,
    night: str = Query(pattern=r"^\d{8}$", description="The night, YYYYMMDD."),
    top: int = Query(20, ge=1, le=1000),
    method: Literal["aad", "pine", "iforest"] = Query("aad", description="iforest: no feedback (the baseline)."),
) -> AnomalyRankingOut:
    """The night's objects, most anomalous first, by an isolation forest (coniferest's AADForest) re-weighted
    by every stored expert answer: "interesting" or a rare class = anomaly, "bogus" or a common class = nominal."""
    # deferred: coniferest (the forests) loads on the first ranking, not with the ingress
    from cosmic_ray.learn.nightrank import rank_night

    answers = await asyncio.to_thread(Labels(ctx.events.engine).all)
    ranking = await asyncio.to_thread(rank_night, ctx.settings, night, answers, top, method)
    return AnomalyRankingOut.model_validate(ranking.to_dict())
