"""The Serve application: the FastAPI ingress over the model replicas, built by a typed app builder.

``build_app`` is the import path of configs/serve.yaml (``cosmic_ray.serve.app:build_app``), used
alike by ``cosmic-ray serve up``, ``serve deploy configs/serve.yaml`` and the KubeRay RayService.

Two deployments: ``Ingress`` (FastAPI: validation, accounts, the event store; the routes are the
routers of :mod:`cosmic_ray.serve.routes`) and ``ProtoNetModel`` (:mod:`cosmic_ray.serve.replica`:
the classifier, dynamic batching).
"""

# No `from __future__ import annotations` here: Serve and FastAPI must see real types.

import functools
from typing import Any, cast

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from ray import serve
from ray.serve.handle import DeploymentHandle

from cosmic_ray.serve import context, metrics, web
from cosmic_ray.serve.args import AppArgs
from cosmic_ray.serve.coalesce import Coalescer
from cosmic_ray.serve.docs import mount_docs
from cosmic_ray.serve.headers import SecurityHeaders, content_security_policy, inline_script_hashes
from cosmic_ray.serve.logins import LoginThrottle
from cosmic_ray.serve.loopback import bind_replica_grpc_to_loopback
from cosmic_ray.serve.middleware import ObserveAndLimit, set_body_limit
from cosmic_ray.serve.parsing import validation_error
from cosmic_ray.serve.replica import MODEL_DEPLOYMENT, ProtoNetModel
from cosmic_ray.serve.routes import ROUTERS
from cosmic_ray.serve.store import Store

#: The ingress deployment's name (``deployments:`` of configs/serve.yaml).
INGRESS_DEPLOYMENT = "Ingress"

api = FastAPI(
    title="cosmic_ray",
    description="Few-shot classification of astronomical alerts: known classes, rare classes, and what fits none.",
    version="0.1.0",
    docs_url=None,  # mount_docs: Swagger UI from the installed package, not a CDN
    redoc_url=None,  # ReDoc would load its script from a CDN
)
api.add_middleware(ObserveAndLimit)
# Outermost: every answer gets the headers, the 413s of ObserveAndLimit included. The pages' inline
# import maps are allowed by the hashes of the HTML files served, computed here from those files.
api.add_middleware(
    SecurityHeaders,
    csp=content_security_policy(inline_script_hashes(web.page_files()), web.APOD_IMAGE_ORIGINS),
)
api.add_exception_handler(RequestValidationError, validation_error)
mount_docs(api)
if web.default_web_dir().is_dir():  # the web pages (web/), from the API's origin, in a source checkout
    web.mount_web(api)
for _router in ROUTERS:
    api.include_router(_router)


@serve.deployment(name=INGRESS_DEPLOYMENT, max_ongoing_requests=256)
@serve.ingress(api)
class Ingress:
    """The API's replica: builds the routes' shared context once, when it starts."""

    def __init__(self, model: DeploymentHandle, args: dict[str, Any]):
        bind_replica_grpc_to_loopback()  # before Serve starts this replica's gRPC server
        settings = AppArgs.model_validate(args).settings()
        set_body_limit(settings.max_body_bytes)
        store = Store.open(settings.event_store_url)
        web.configure(store.accounts, settings)  # the pages check sessions against these accounts
        api_metrics = metrics.api_metrics()
        ctx = context.IngressContext(
            settings=settings,
            events=store.events,
            accounts=store.accounts,
            model=model,
            # Concurrent single predictions of this replica go to the model together: at once while
            # fewer than `coalesce_eager_in_flight` model calls are out, else queued into the next call
            # (one Ray round trip for many requests; the batch grows with the load, no wait when idle).
            coalescer=Coalescer(
                functools.partial(context.call_model, model, "predict"), on_batch=api_metrics.coalesced.observe
            ),
            logins=LoginThrottle(  # in the store: one limit for every replica
                store.engine,
                settings.login_attempts_per_account,
                settings.login_attempts_per_address,
                settings.login_window_s,
                settings.login_concurrency,
                settings.login_queue_s,
            ),
            metrics=api_metrics,
        )
        context.configure(ctx)
        self.ctx = ctx
        try:
            api_metrics.registry.register(metrics.StoreCollector(store.events))
        except ValueError:  # already registered in this process
            pass

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """``user_config`` of configs/serve.yaml: how concurrent ``/predict`` calls are coalesced."""
        self.ctx.coalescer.configure(
            int(user_config.get("coalesce_max_batch_size", 64)),
            int(user_config.get("coalesce_max_in_flight", 4)),
            int(user_config.get("coalesce_eager_in_flight", 2)),
            int(user_config.get("coalesce_parallel_at", 16)),
        )


def build_app(args: dict[str, Any] | None = None) -> serve.Application:
    """The Serve application: ``Ingress -> ProtoNetModel``, with per-deployment options from ``args``."""
    parsed = AppArgs.model_validate(args or {})
    plain = parsed.model_dump(exclude={"deployments"})
    options = {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in parsed.deployments}
    # mypy does not apply class decorators: both names are Deployments
    model = cast(serve.Deployment, ProtoNetModel).options(**options.get(MODEL_DEPLOYMENT, {})).bind(plain)
    return cast(serve.Deployment, Ingress).options(**options.get(INGRESS_DEPLOYMENT, {})).bind(model, plain)
