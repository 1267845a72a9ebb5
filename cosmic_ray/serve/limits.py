"""Concurrency bounds per read route: a flood of one expensive read cannot starve ``/predict``.

Each bounded route holds a slot while it runs; when its ``limit`` slots are taken, a new request is
answered at once with 503 and ``Retry-After`` instead of queueing behind the others (and behind the
event loop's thread pool that ``/predict`` shares). Counters live in the ingress context, one set per
ingress process (:class:`cosmic_ray.serve.context.RouteSlots`); the limit is the setting ``COSMIC_RAY_READ_CONCURRENCY`` (``Settings.read_concurrency``).

A route declares its bound in its signature (as it declares who may call it)::

    async def lightcurve(object_id: str, ctx: Ctx, _: Reader, __: LightcurveSlot) -> ...
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at route definition.

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends

from cosmic_ray.serve.deps import Ctx
from cosmic_ray.serve.schemas import ErrorResponse


def bounded(route: str) -> Callable[..., AsyncIterator[None]]:
    """A dependency that holds one of ``route``'s slots while the request runs."""

    async def slot(ctx: Ctx) -> AsyncIterator[None]:
        ctx.slots.enter(route, ctx.settings.read_concurrency)
        try:
            yield
        finally:
            ctx.slots.leave(route)

    slot.__name__ = f"slot_{route}"
    return slot


LightcurveSlot = Annotated[None, Depends(bounded("lightcurve"))]
SimilarSlot = Annotated[None, Depends(bounded("similar"))]

#: ``responses=`` of a bounded route.
BUSY: dict[int | str, dict[str, object]] = {503: {"model": ErrorResponse}}
