"""Subscriptions: ``GET /subscriptions`` (your own), ``POST /subscriptions`` (astronomers, admins),
``GET``/``DELETE /subscriptions/{id}``.

A subscription sends each match (a class above a probability, an open-set score above a threshold,
a watchlist's new match, or the nightly digest) to a webhook through the outbox
(:mod:`cosmic_ray.serve.delivery`). The webhook URL is checked when the subscription is made (a
private, loopback or link-local target is refused with 422 unless ``COSMIC_RAY_WEBHOOK_ALLOW``
lists it), stored encrypted, and shown back masked (``https://host/…``) only. Another user's
subscription is a 404; admins see all.
"""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

import asyncio
import threading

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy.engine import Engine

from cosmic_ray.core.config import Settings
from cosmic_ray.core.errors import ConfigError
from cosmic_ray.serve.db import NotFoundError, StoreError
from cosmic_ray.serve.deps import AUTH_ERRORS, Ctx, CurrentUser, Writer
from cosmic_ray.serve.egress import EgressRefused, resolve_target
from cosmic_ray.serve.parsing import parse_json_body
from cosmic_ray.serve.routes.watchlists import RowId
from cosmic_ray.serve.schemas import ErrorResponse
from cosmic_ray.serve.secretbox import secret_box
from cosmic_ray.serve.subscriptions import Subscriptions
from cosmic_ray.serve.watch_schemas import SubscriptionIn, SubscriptionOut

router = APIRouter()

_STORES: dict[int, Subscriptions] = {}
_LOCK = threading.Lock()
_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    **AUTH_ERRORS,
}


def subscriptions_of(engine: Engine, settings: Settings) -> Subscriptions:
    """One :class:`Subscriptions` per engine in this process (with the installation's webhook key)."""
    with _LOCK:
        store = _STORES.get(id(engine))
        if store is None or store.engine is not engine:
            store = _STORES[id(engine)] = Subscriptions(engine, secret_box(settings))
        return store


@router.get("/subscriptions", response_model=list[SubscriptionOut], responses=AUTH_ERRORS)
async def list_subscriptions(ctx: Ctx, caller: CurrentUser) -> list[dict]:
    """Your subscriptions (URLs masked)."""
    store = subscriptions_of(ctx.events.engine, ctx.settings)
    return [s.to_dict() for s in await asyncio.to_thread(store.list_for, caller.username)]


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=SubscriptionOut,
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SubscriptionIn.model_json_schema()}},
        }
    },
)
async def create_subscription(request: Request, ctx: Ctx, caller: Writer) -> dict:
    """Subscribe a webhook to a class, to novel alerts, to one of your watchlists, or to the nightly digest.

    The body (:class:`SubscriptionIn`) is read after the caller is checked: anonymous is 401 whatever it holds.
    """
    body: SubscriptionIn = parse_json_body(SubscriptionIn, await request.body())
    store = subscriptions_of(ctx.events.engine, ctx.settings)
    try:
        await asyncio.to_thread(resolve_target, body.url, ctx.settings.webhook_allow)
        record = await asyncio.to_thread(store.create, caller.username, body.kind, body.params, body.url)
    except EgressRefused as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    except ConfigError as exc:  # no webhook key here (COSMIC_RAY_WEBHOOK_KEY unset, home read-only)
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    except NotFoundError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    except StoreError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    return record.to_dict()


def _visible(store: Subscriptions, sub_id: int, caller_name: str, caller_role: str) -> dict:
    try:
        record = store.get(sub_id)
    except NotFoundError:
        record = None
    if record is None or (record.owner != caller_name and caller_role != "admin"):
        raise HTTPException(status_code=404, detail=f"you have no subscription {sub_id}")
    return record.to_dict()


@router.get("/subscriptions/{sub_id}", response_model=SubscriptionOut, responses=_ERRORS)
async def get_subscription(sub_id: RowId, ctx: Ctx, caller: CurrentUser) -> dict:
    store = subscriptions_of(ctx.events.engine, ctx.settings)
    return await asyncio.to_thread(_visible, store, sub_id, caller.username, caller.role)


@router.delete("/subscriptions/{sub_id}", status_code=204, responses=_ERRORS)
async def delete_subscription(sub_id: RowId, ctx: Ctx, caller: Writer) -> Response:
    store = subscriptions_of(ctx.events.engine, ctx.settings)
    await asyncio.to_thread(_visible, store, sub_id, caller.username, caller.role)
    try:
        await asyncio.to_thread(store.delete, sub_id)
    except NotFoundError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    return Response(status_code=204)
