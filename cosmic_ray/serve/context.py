"""What the ingress's routes share in one process: settings, the event store, the model handle and
how calls reach it (coalesced single predictions, chunked batches), login limits, metrics, and
the slots of the bounded read routes (:mod:`cosmic_ray.serve.limits`).

The ingress builds one :class:`IngressContext` when its replica starts and hands it to
:func:`configure`; routes receive it through the ``Ctx`` dependency (:mod:`cosmic_ray.serve.deps`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.handle import DeploymentHandle

from cosmic_ray.core.config import Settings
from cosmic_ray.serve import metrics
from cosmic_ray.serve.accounts import Accounts
from cosmic_ray.serve.coalesce import Coalescer
from cosmic_ray.serve.events import Events
from cosmic_ray.serve.items import ModelItem
from cosmic_ray.serve.logins import LoginThrottle

log = logging.getLogger(__name__)

Prediction = dict[str, Any]  # a replica's answer for one item: the prediction, or {"error": ...}


async def call_model(model: DeploymentHandle, method: str, items: list[ModelItem]) -> list[Prediction]:
    """``model.<method>(items)``, sent once more if its replica died under it (a prediction is safe to repeat)."""
    try:
        return await getattr(model, method).remote(items)
    except (RayActorError, ActorUnavailableError) as exc:
        log.warning("model replica lost during a call (%s): sending it again", type(exc).__name__)
        return await getattr(model, method).remote(items)


#: ``Retry-After`` seconds of a 503 answered because a route is full.
RETRY_AFTER_S = 1


@dataclass
class RouteSlots:
    """Requests in flight per bounded route (one event loop: plain counters, no lock)."""

    in_flight: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)

    def enter(self, route: str, limit: int) -> None:
        """Take a slot of ``route``.

        Raises:
            HTTPException: 503 with ``Retry-After`` when ``limit`` requests of it are in flight.
        """
        busy = self.in_flight.get(route, 0)
        if busy >= limit:
            self.refused[route] = self.refused.get(route, 0) + 1
            raise HTTPException(
                status_code=503,
                detail=f"{route}: {busy} requests in flight (the limit); retry in {RETRY_AFTER_S} s",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self.in_flight[route] = busy + 1

    def leave(self, route: str) -> None:
        self.in_flight[route] = max(0, self.in_flight.get(route, 0) - 1)


@dataclass(frozen=True)
class IngressContext:
    """The ingress process's shared state (one per replica)."""

    settings: Settings
    events: Events
    accounts: Accounts
    model: DeploymentHandle
    coalescer: Coalescer[ModelItem, Prediction]
    logins: LoginThrottle
    metrics: metrics.ApiMetrics
    slots: RouteSlots = field(default_factory=RouteSlots)  # requests in flight per bounded read route

    async def predict_items(self, items: list[ModelItem]) -> list[Prediction]:
        """Predictions of ``items``, in order: one coalesced call for one item, chunks over the replicas for more."""
        if len(items) == 1:
            return [await self.coalescer.submit(items[0])]
        # spread a batch over the replicas, one call per chunk: at least two chunks (both replicas
        # of the default config work on one request), at most 64 light curves, at least 8 (a call has a fixed cost)
        chunk = max(8, min(64, math.ceil(len(items) / 2)))
        parts = await asyncio.gather(
            *(call_model(self.model, "predict_many", items[i : i + chunk]) for i in range(0, len(items), chunk))
        )
        return [r for part in parts for r in part]

    async def model_info(self) -> dict[str, Any]:
        """The model replica's :class:`~cosmic_ray.serve.schemas.ModelInfo` as a dict."""
        return await self.model.info.remote()

    def count(self, results: list[Prediction]) -> None:
        """Count predictions by class and rarity (metrics)."""
        for r in results:
            if "class" in r:
                self.metrics.predictions.labels(r["class"], str(r["rare"]).lower()).inc()


_CONTEXT: dict[str, IngressContext] = {}


def configure(context: IngressContext) -> None:
    """Make ``context`` the one the routes of this process see."""
    _CONTEXT["ingress"] = context


def current() -> IngressContext:
    """The context of this process.

    Raises:
        RuntimeError: no ingress configured one (the routes run only inside the Serve ingress).
    """
    try:
        return _CONTEXT["ingress"]
    except KeyError:
        raise RuntimeError("no ingress context: the API routes run inside the Serve ingress") from None
