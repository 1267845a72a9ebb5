"""The ingress's shared state for API tests that serve the real routers without a model.

Routes that never call the model (accounts, objects, watchlists, pages...) are served by a plain
FastAPI app over the real routers, with a real event store; this builds the
:class:`~cosmic_ray.serve.context.IngressContext` they read, in one place, so a new field of the
context is added here and not in every test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from cosmic_ray.core.config import Settings
from cosmic_ray.serve import context, metrics, web
from cosmic_ray.serve.coalesce import Coalescer
from cosmic_ray.serve.logins import LoginThrottle
from cosmic_ray.serve.store import Store


async def _no_model(items: list) -> list:
    raise AssertionError("these routes never call the model")


def model_free_context(settings: Settings, store: Store, logins: int = 5, model: Any = None) -> context.IngressContext:
    """An ingress context over ``store`` whose model is never called.

    Args:
        logins: login attempts allowed per account and per address in a minute.
        model: what ``ctx.model`` holds (routes that read the served version only).
    """
    return context.IngressContext(
        settings=settings,
        events=store.events,
        accounts=store.accounts,
        model=model,
        coalescer=Coalescer(_no_model),
        logins=LoginThrottle(store.engine, logins, logins, 60),
        metrics=metrics.api_metrics(),
    )


@contextlib.contextmanager
def configured(
    settings: Settings, store: Store, logins: int = 5, pages: bool = False
) -> Iterator[context.IngressContext]:
    """:func:`model_free_context` configured for the routes (and the web pages with ``pages``) until the
    block ends; what was configured before is put back, also when the block fails."""
    saved_context, saved_web = dict(context._CONTEXT), dict(web._CONFIGURED)
    ctx = model_free_context(settings, store, logins)
    context.configure(ctx)
    if pages:
        web.configure(store.accounts, settings)
    try:
        yield ctx
    finally:
        context._CONTEXT.clear()
        context._CONTEXT.update(saved_context)
        web._CONFIGURED.clear()
        web._CONFIGURED.update(saved_web)
