"""The live path's classified alerts: ``GET /alerts``, ``GET /candidates`` (readers)."""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

import asyncio

from fastapi import APIRouter, Query

from cosmic_ray.serve.deps import AUTH_ERRORS, Ctx, Reader
from cosmic_ray.serve.schemas import CLASS_NAME_PATTERN, CLASS_NAME_RULE, AlertRecord, QueryTime

router = APIRouter()


@router.get("/alerts", response_model=list[AlertRecord], responses=AUTH_ERRORS)
async def alerts(
    ctx: Ctx,
    _: Reader,
    class_: str | None = Query(
        None, alias="class", pattern=CLASS_NAME_PATTERN, description=f"Only this class ({CLASS_NAME_RULE})."
    ),
    rare: bool | None = Query(None, description="Only rare (true) or only not rare (false)."),
    since: QueryTime | None = Query(
        None, description="Classified at or after this time (ISO 8601; UTC if no zone; years 1-9999 in UTC)."
    ),
    limit: int = Query(100, ge=1, le=1000),
) -> list[AlertRecord]:
    """Recent classified alerts of the live path, newest first."""
    rows = await asyncio.to_thread(ctx.events.recent_alerts, class_, rare, since, limit)
    return [AlertRecord.model_validate(r) for r in rows]


@router.get("/candidates", response_model=list[AlertRecord], responses=AUTH_ERRORS)
async def candidates(
    ctx: Ctx,
    _: Reader,
    class_: str = Query(
        alias="class", pattern=CLASS_NAME_PATTERN, description=f"The class to rank by ({CLASS_NAME_RULE})."
    ),
    since: QueryTime | None = Query(
        None, description="Classified at or after this time (ISO 8601; UTC if no zone; years 1-9999 in UTC)."
    ),
    limit: int = Query(50, ge=1, le=1000),
) -> list[AlertRecord]:
    """A follow-up list: the live path's objects ranked by their probability of one class, each
    object once (its most probable alert), highest first. From 5 examples the top 5% of objects
    held ~70% of the SLSN-I in cross-validation (bench/README.md), far more than are called SLSN-I."""
    rows = await asyncio.to_thread(ctx.events.top_candidates, class_, since, limit)
    return [AlertRecord.model_validate(r) for r in rows]
