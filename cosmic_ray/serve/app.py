"""Ray Serve deployments behind a FastAPI ingress, built by a typed app builder.

``build_app`` is the import path of configs/serve.yaml (``cosmic_ray.serve.app:build_app``), used
alike by ``cosmic-ray serve up``, ``serve deploy configs/serve.yaml`` and the KubeRay RayService.

Two deployments: ``Ingress`` (FastAPI: validation, accounts, the event store) and
``ProtoNetModel`` (the classifier, dynamic batching). Model replicas follow the registry's
``production`` alias and the event store's registered classes by polling, so every replica
agrees within ``class_poll_seconds`` / ``model_poll_seconds`` without a change to the Serve config.
"""

# No `from __future__ import annotations` here: FastAPI must see real types on the ingress methods.

import asyncio
import functools
import logging
import math
import threading
import time
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ray import serve
from ray.serve.handle import DeploymentHandle

from cosmic_ray.core.config import Settings
from cosmic_ray.core.errors import BadAlertError
from cosmic_ray.serve import auth
from cosmic_ray.serve.coalesce import Coalescer
from cosmic_ray.serve.schemas import (
    AlertRecord,
    BatchRequest,
    BatchResponse,
    ClassIn,
    ClassInfo,
    ErrorResponse,
    Health,
    LightCurveIn,
    LoginRequest,
    Me,
    ModelInfo,
    ObjectLightCurve,
    PredictRequest,
    PredictResponse,
    SimilarResponse,
)

log = logging.getLogger(__name__)


class AppArgs(BaseModel):
    """Arguments of the application (``args:`` in configs/serve.yaml)."""

    model_config = ConfigDict(extra="forbid")

    rare_classes: list[str] = Field(default_factory=lambda: ["SLSN-I", "SLSN-II", "TDE", "SN Ibn/Icn"])
    novelty_threshold: float = Field(default=0.95, gt=0, le=1)
    model_poll_seconds: float = Field(default=15.0, gt=0)
    class_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often replicas check the store's registered classes."
    )
    neighbours: int = Field(default=5, ge=0, le=50)
    # Optional overrides of the environment's settings (tests and local runs pass them explicitly).
    home: str | None = None
    mlflow_tracking_uri: str | None = None
    store_url: str | None = None
    max_batch: int | None = None
    max_body_bytes: int | None = None
    # Per-deployment option overrides (the `deployments:` list of a Serve config) for `serve.run`.
    deployments: list[dict[str, Any]] = Field(default_factory=list)

    def settings(self) -> Settings:
        overrides = {
            "home": self.home,
            "mlflow_tracking_uri": self.mlflow_tracking_uri,
            "store_url": self.store_url,
            "max_batch": self.max_batch,
            "max_body_bytes": self.max_body_bytes,
        }
        return Settings(**{k: v for k, v in overrides.items() if v is not None})


_EPOCH = date(1970, 1, 1)  # MJD 40587


@functools.lru_cache(maxsize=65536)
def _night(day: int) -> str:
    """YYYYMMDD of integer MJD ``day`` (as :func:`cosmic_ray.core.lightcurve.mjd_to_night`; nights repeat, so cached)."""
    return (_EPOCH + timedelta(days=day - 40587)).strftime("%Y%m%d")


def points_to_rows(object_id: str, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points ``{mjd, band, mag, magerr[, is_limit]}`` -> lake-schema rows the featurizer reads."""
    return [
        {
            "object_id": object_id,
            "source": "user",
            "mjd": float(p["mjd"]),
            "band": p["band"],
            "mag": p["mag"],
            "magerr": p.get("magerr", 0.0),
            "is_limit": bool(p.get("is_limit", False)),
            "night": _night(math.floor(p["mjd"])),
        }
        for p in points
    ]


def lightcurve_rows(lc: LightCurveIn) -> list[dict[str, Any]]:
    """A validated light curve -> rows, read from the points' attributes (no dict per point in between)."""
    object_id = lc.object_id
    return [
        {
            "object_id": object_id,
            "source": "user",
            "mjd": p.mjd,
            "band": p.band,
            "mag": p.mag,
            "magerr": p.magerr,
            "is_limit": p.is_limit,
            "night": _night(math.floor(p.mjd)),
        }
        for p in lc.points
    ]


def _count_items(calls: list[list[Any]]) -> int:
    """Batch size of a list of calls that each carry a list of items: the number of items."""
    return sum(len(call) for call in calls)


# ---------------------------------------------------------------- model deployment
@serve.deployment(max_ongoing_requests=128)
class ProtoNetModel:
    """Holds the production classifier plus the registered classes; batches light curves.

    Follows the registry's alias (new versions load beside the old one and replace it in one
    assignment) and the event store's class table (prototypes recomputed with the current encoder).
    """

    def __init__(self, args: dict[str, Any]):
        from cosmic_ray.learn import registry
        from cosmic_ray.serve.store import Store

        self.args = AppArgs.model_validate(args)
        self.settings = self.args.settings()
        self._registry = registry
        self.store = Store.open(self.settings.event_store_url).events
        self._rebuild = threading.Lock()
        classifier, registered = registry.load_model(self.settings)
        classifier.novelty_threshold = self.args.novelty_threshold
        self._base = (classifier, registered)
        # (classifier with registered classes, registered model, classes version, registered names): one tuple, swapped atomically
        self._current = self._with_registered_classes(classifier, registered)
        self.last_reload_error: str | None = None
        self.last_class_error: str | None = None
        self._lake_index: tuple[Any, ...] | None = None
        try:
            self.replica = serve.get_replica_context().replica_id.unique_id
        except Exception:  # outside Serve (plain construction in a benchmark)
            self.replica = "local"
        self._stop = threading.Event()
        threading.Thread(target=self._follow, daemon=True, name="model-and-class-poller").start()

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """``user_config`` of configs/serve.yaml: batch size (light curves), wait timeout, torch threads."""
        self.predict.set_max_batch_size(int(user_config.get("max_batch_size", 64)))
        self.predict.set_batch_wait_timeout_s(float(user_config.get("batch_wait_timeout_s", 0.0)))
        if "torch_threads" in user_config:
            import torch

            torch.set_num_threads(int(user_config["torch_threads"]))

    # ------------------------------------------------------------ following the registry and the store
    def _follow(self) -> None:
        next_model = time.monotonic() + self.args.model_poll_seconds
        while not self._stop.wait(self.args.class_poll_seconds):
            self.sync_classes()
            if time.monotonic() >= next_model:
                self.check_for_new_model()
                next_model = time.monotonic() + self.args.model_poll_seconds

    def _with_registered_classes(self, base, registered) -> tuple[Any, Any, int, list[str]]:
        """A copy of ``base`` with a prototype per registered class (embedded by ``base``'s encoder)."""
        from cosmic_ray.learn.features import featurize_objects

        version, records = self.store.classes_snapshot()
        clf = base
        names = []
        for record in records:
            if record.name in base.class_names:
                log.warning("registered class %r has the name of a trained class: ignored", record.name)
                continue
            arrays = featurize_objects(
                [points_to_rows(f"s{i}", s["points"]) for i, s in enumerate(record.support)], clf.max_len
            )
            if len(arrays["seq"]) == 0:
                log.warning("registered class %r has no usable support light curve: ignored", record.name)
                continue
            clf = clf.with_class(
                record.name, arrays["seq"], arrays["length"], arrays["feats"]
            )  # a copy: base is untouched
            names.append(record.name)
        return clf, registered, version, names

    def sync_classes(self) -> int:
        """Rebuild the prototypes if the store's classes changed; returns the classes version served."""
        try:
            if self.store.classes_version() != self._current[2]:
                with self._rebuild:
                    base, registered = self._base
                    self._current = self._with_registered_classes(base, registered)
                    log.info("classes version %d: registered %s", self._current[2], self._current[3])
            self.last_class_error = None
        except Exception as exc:  # keep serving the classes we have
            self.last_class_error = f"{type(exc).__name__}: {exc}"
            log.warning("could not refresh the registered classes: %s", exc)
        return self._current[2]

    def check_for_new_model(self) -> str:
        """Load the production version beside the current one and switch if it changed."""
        try:
            latest = self._registry.production_version(self.settings)
            if latest is None or latest.version == self._base[1].version:
                return self._base[1].version
            classifier, registered = self._registry.load_model(self.settings, latest.version)
            classifier.novelty_threshold = self.args.novelty_threshold
            with self._rebuild:
                current = self._with_registered_classes(classifier, registered)
                self._base = (classifier, registered)
                self._current = current
                self._lake_index = None
            self.last_reload_error = None
            log.info("now serving %s version %s", registered.name, registered.version)
        except Exception as exc:  # a bad version leaves the old one serving
            self.last_reload_error = (
                f"version {latest.version if 'latest' in locals() and latest else '?'}: {type(exc).__name__}: {exc}"
            )
            log.warning("model reload failed, keeping version %s: %s", self._base[1].version, exc)
        return self._base[1].version

    def info(self) -> dict[str, Any]:
        classifier, registered, classes_version, names = self._current
        return ModelInfo(
            name=registered.name,
            version=registered.version,
            run_id=registered.run_id,
            classes=classifier.class_names,
            trained_at=classifier.meta.get("trained_at"),
            meta=classifier.meta,
            last_reload_error=self.last_reload_error,
            registered_classes=names,
            classes_version=classes_version,
            replica=self.replica,
        ).model_dump()

    # ------------------------------------------------------------ classification
    def _classify(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each item ``{"object_id", "rows"[, "candid"]}`` -> prediction dict; one featurize + forward."""
        from cosmic_ray.learn.features import featurize_objects

        classifier, registered, _, _ = self._current
        arrays = featurize_objects([item["rows"] for item in items], classifier.max_len)  # object_id: the item's index
        preds = {p.object_id: p for p in classifier.predict_features(arrays, neighbours=self.args.neighbours)}
        out = []
        for i, item in enumerate(items):
            p = preds.get(str(i))
            if p is None:
                out.append({"error": "no usable detection in the light curve"})
                continue
            out.append(
                {
                    "object_id": item["object_id"],
                    "class": p.label,
                    "probabilities": p.probabilities,
                    "open_set_score": p.open_set_score,
                    "novel": p.novel,
                    "rare": p.label in self.args.rare_classes,
                    "neighbours": p.neighbours,
                    "model_version": registered.version,
                    **({"candid": item["candid"]} if "candid" in item else {}),
                }
            )
        return out

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0, batch_size_fn=_count_items)
    async def predict(self, calls: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        """A list of items per call (one request, or an ingress's coalesced requests); Serve
        gathers concurrent calls up to ``max_batch_size`` light curves into one featurize + forward."""
        results = self._classify([item for call in calls for item in call])
        out, start = [], 0
        for call in calls:
            out.append(results[start : start + len(call)])
            start += len(call)
        return out

    def predict_many(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A whole list in one call (``/predict/batch`` chunks and the live path)."""
        return self._classify(items)

    # ------------------------------------------------------------ similarity
    def _index(self, classifier, version: str):
        """Embeddings of every lake object with a usable light curve, per model version (built on first use)."""
        import numpy as np

        from cosmic_ray.ingest.lake import Lake
        from cosmic_ray.learn.features import featurize

        lake = Lake(self.settings.lake_dir)
        n_files = len(lake.files())
        if self._lake_index is None or self._lake_index[:2] != (version, n_files):
            arrays = featurize(lake.read(), classifier.max_len)
            emb = classifier.embed(arrays["seq"], arrays["length"], arrays["feats"])  # (N, D)
            ids = np.asarray(arrays["object_id"], dtype=str)
            labels = np.asarray([str(x or "") for x in arrays["label"]], dtype=str)
            if len(ids) == 0:  # no lake here: the classifier's reference objects
                ids, labels, emb = (
                    classifier.ref_ids.astype(str),
                    classifier.ref_labels.astype(str),
                    classifier.ref_embeddings,
                )
            self._lake_index = (version, n_files, ids, labels, emb)
        return self._lake_index[2:]

    def similar(self, object_id: str, k: int = 10) -> dict[str, Any] | None:
        """The ``k`` nearest lake objects to ``object_id`` in embedding space; None if it is unknown."""
        import numpy as np

        classifier, registered, _, _ = self._current
        ids, labels, emb = self._index(classifier, registered.version)
        where = np.flatnonzero(ids == object_id)
        if len(where):
            query = emb[where[0]]
        else:
            ref = np.flatnonzero(classifier.ref_ids.astype(str) == object_id)
            if not len(ref):
                return None
            query = classifier.ref_embeddings[ref[0]]
        dist = np.sqrt(((emb - query[None, :]) ** 2).sum(axis=1))  # (N,)
        order = [j for j in np.argsort(dist) if ids[j] != object_id][:k]
        return {
            "object_id": object_id,
            "model_version": registered.version,
            "neighbours": [
                {"object_id": str(ids[j]), "label": str(labels[j]), "distance": float(dist[j])} for j in order
            ],
        }


# ---------------------------------------------------------------- ingress
api = FastAPI(
    title="cosmic_ray",
    description="Few-shot classification of astronomical alerts: known classes, rare classes, and what fits none.",
    version="0.1.0",
)

_LIMITS: dict[str, int] = {}  # this process's body limit, set by the ingress from its settings


def _body_limit() -> int:
    if "max_body_bytes" not in _LIMITS:
        _LIMITS["max_body_bytes"] = Settings().max_body_bytes
    return _LIMITS["max_body_bytes"]


class ObserveAndLimit:
    """ASGI middleware: 413 for bodies over the limit (declared or streamed), request metrics."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from cosmic_ray.serve import metrics

        start = time.perf_counter()
        limit = _body_limit()
        status = [500]

        async def send_observed(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        length = dict(scope["headers"]).get(b"content-length")
        try:
            if length is not None and length.isdigit() and int(length) > limit:
                too_big = JSONResponse(
                    status_code=413,
                    content={"detail": f"request body of {int(length)} bytes exceeds the limit of {limit}"},
                )
                return await too_big(scope, receive, send_observed)
            if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
                # A streamed (chunked) body: read it here up to the limit, answer 413 past it, else
                # replay it to the app (raising inside the app's body parsing would become a 400).
                try:
                    receive = await _buffered_receive(receive, limit)
                except _BodyTooLarge:
                    too_big = JSONResponse(
                        status_code=413, content={"detail": f"request body exceeds the limit of {limit} bytes"}
                    )
                    return await too_big(scope, receive, send_observed)
            await self.app(scope, receive, send_observed)
        finally:
            route = scope.get("route")
            metrics.observe(
                getattr(route, "path", "unmatched"), scope["method"], status[0], time.perf_counter() - start
            )


class _BodyTooLarge(Exception):
    pass


async def _buffered_receive(receive, limit: int):
    """Read a streamed request body (at most ``limit`` bytes) and return a receive that replays it.

    Raises:
        _BodyTooLarge: the body is longer than ``limit``.
    """
    messages, seen = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        seen += len(message.get("body", b""))
        if seen > limit:
            raise _BodyTooLarge()
        if not message.get("more_body", False):
            break
    replay = iter(messages)

    async def replayed():
        return next(replay, None) or await receive()

    return replayed


api.add_middleware(ObserveAndLimit)


def request_to_item(body: PredictRequest) -> dict[str, Any]:
    """A validated request -> ``{"object_id", "rows"}`` for the model.

    Raises:
        HTTPException: 422 when the alert cannot be read or the light curve has no detection.
    """
    from cosmic_ray.sources import ztf

    if body.alert is not None:
        try:
            rows = ztf.alert_json_to_rows(body.alert)
        except BadAlertError as exc:
            raise HTTPException(status_code=422, detail=f"bad alert: {exc}") from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise HTTPException(
                status_code=422, detail=f"bad alert: malformed field ({type(exc).__name__}: {exc})"
            ) from exc
        rows = [r for r in rows if r["source"] == "ztf_alert"]
        object_id = str(body.alert.get("objectId"))
    else:
        rows = lightcurve_rows(body.lightcurve)
        object_id = body.lightcurve.object_id
    if not any(not r["is_limit"] for r in rows):
        raise HTTPException(status_code=422, detail="the light curve has no detection (only upper limits)")
    return {"object_id": object_id, "rows": rows}


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON request body of ``model`` for a route that reads the body itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }


def parse_json_body(model: type[BaseModel], raw: bytes) -> Any:
    """``model`` validated from the raw JSON bytes.

    Raises:
        RequestValidationError: as FastAPI raises it for a body it parses (422, locations under ``body``).
    """
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [
            {"loc": ("body", *e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise RequestValidationError(errors) from None


@api.exception_handler(RequestValidationError)
async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with where and why, without echoing the input (it may be huge, secret or not JSON-encodable)."""
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": errors})


def _mount_pages() -> None:
    """Serve the web pages (web/) from the API's origin when the folder is there (a source checkout)."""
    from cosmic_ray.serve.web import default_web_dir, mount_web

    if default_web_dir().is_dir():
        mount_web(api)


_mount_pages()

_AUTH_ERRORS = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}}


@serve.deployment(max_ongoing_requests=256)
@serve.ingress(api)
class Ingress:
    def __init__(self, model: DeploymentHandle, args: dict[str, Any]):
        from cosmic_ray.serve import metrics, web
        from cosmic_ray.serve.store import Store

        self.model = model
        self.args = AppArgs.model_validate(args)
        self.settings = self.args.settings()
        _LIMITS["max_body_bytes"] = self.settings.max_body_bytes
        store = Store.open(self.settings.event_store_url)
        self.store, self.accounts = store.events, store.accounts
        web.configure(self.accounts, self.settings)  # the pages check sessions against this store
        s = self.settings
        self.logins_by_account = auth.RateLimiter(s.login_attempts_per_account, s.login_window_s)
        self.logins_by_address = auth.RateLimiter(s.login_attempts_per_address, s.login_window_s)
        self.metrics = metrics.api_metrics()
        # Concurrent single predictions of this replica go to the model together: at once while
        # fewer than `coalesce_eager_in_flight` model calls are out, else queued into the next call
        # (one Ray round trip for many requests; the batch grows with the load, no wait when idle).
        self._coalescer = Coalescer(
            functools.partial(self._call_model, "predict"), on_batch=self.metrics.coalesced.observe
        )
        try:
            self.metrics.registry.register(metrics.StoreCollector(self.store))
        except ValueError:  # already registered in this process
            pass

    # ------------------------------------------------------------ helpers
    def _principal(self, request: Request):
        return auth.principal_from_request(request, self.accounts)

    def _reader(self, request: Request) -> None:
        if self.settings.read_requires_auth:
            auth.require_reader(self._principal(request), True)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """``user_config`` of configs/serve.yaml: how concurrent ``/predict`` calls are coalesced."""
        self._coalescer.configure(
            int(user_config.get("coalesce_max_batch_size", 64)),
            int(user_config.get("coalesce_max_in_flight", 4)),
            int(user_config.get("coalesce_eager_in_flight", 2)),
            int(user_config.get("coalesce_parallel_at", 16)),
        )

    async def _call_model(self, method: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A model call, sent once more if its replica died under it (a prediction is safe to repeat)."""
        from ray.exceptions import ActorUnavailableError, RayActorError

        try:
            return await getattr(self.model, method).remote(items)
        except (RayActorError, ActorUnavailableError) as exc:
            log.warning("model replica lost during a call (%s): sending it again", type(exc).__name__)
            return await getattr(self.model, method).remote(items)

    async def _predict_items(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(items) == 1:
            return [await self._coalescer.submit(items[0])]
        # spread a batch over the replicas, one call per chunk: at least two chunks (both replicas
        # of the default config work on one request), at most 64 light curves, at least 8 (a call has a fixed cost)
        chunk = max(8, min(64, math.ceil(len(items) / 2)))
        parts = await asyncio.gather(
            *(self._call_model("predict_many", items[i : i + chunk]) for i in range(0, len(items), chunk))
        )
        return [r for part in parts for r in part]

    def _count(self, results: list[dict[str, Any]]) -> None:
        for r in results:
            if "class" in r:
                self.metrics.predictions.labels(r["class"], str(r["rare"]).lower()).inc()

    # ------------------------------------------------------------ health, model
    @api.get("/healthz", response_model=Health)
    async def healthz(self) -> Health:
        info = await self.model.info.remote()
        return Health(status="ok", model_version=info["version"])

    @api.get("/model", response_model=ModelInfo, responses=_AUTH_ERRORS)
    async def model_info(self, request: Request) -> ModelInfo:
        self._reader(request)
        return ModelInfo.model_validate(await self.model.info.remote())

    @api.post("/model/reload", response_model=ModelInfo, responses=_AUTH_ERRORS)
    async def model_reload(self, request: Request) -> ModelInfo:
        """Check the registry now (on one replica; the others follow within ``model_poll_seconds``)."""
        auth.require_writer(self._principal(request))
        await self.model.check_for_new_model.remote()
        return ModelInfo.model_validate(await self.model.info.remote())

    @api.get("/metrics", include_in_schema=False)
    async def prometheus(self) -> Response:
        from cosmic_ray.serve import metrics

        try:
            self.metrics.model_version.set(float((await self.model.info.remote())["version"]))
        except (ValueError, KeyError):
            pass
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    # ------------------------------------------------------------ predictions
    @api.post(
        "/predict",
        response_model=PredictResponse,
        openapi_extra=_json_body(PredictRequest),
        responses={413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, **_AUTH_ERRORS},
    )
    async def predict(self, request: Request) -> Response:
        """One alert or light curve. The body is validated straight from its bytes (pydantic's JSON
        parser: no ``json.loads`` + validation of the Python objects, the hot path's largest cost
        in this process) and the answer serialised once."""
        start = time.perf_counter()
        self._reader(request)
        body = parse_json_body(PredictRequest, await request.body())
        (result,) = await self._predict_items([request_to_item(body)])
        if "error" in result:
            raise HTTPException(status_code=422, detail=result["error"])
        self._count([result])
        answer = PredictResponse(**result, latency_ms=(time.perf_counter() - start) * 1000)
        return Response(answer.model_dump_json(by_alias=True), media_type="application/json")

    @api.post(
        "/predict/batch",
        response_model=BatchResponse,
        responses={413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, **_AUTH_ERRORS},
    )
    async def predict_batch(self, body: BatchRequest, request: Request) -> BatchResponse:
        start = time.perf_counter()
        self._reader(request)
        if len(body.items) > self.settings.max_batch:
            raise HTTPException(
                status_code=413, detail=f"batch of {len(body.items)} exceeds the limit of {self.settings.max_batch}"
            )
        items = [request_to_item(item) for item in body.items]
        results = await self._predict_items(items)
        bad = [i for i, r in enumerate(results) if "error" in r]
        if bad:
            raise HTTPException(status_code=422, detail=f"items {bad}: no usable detection")
        self._count(results)
        latency = (time.perf_counter() - start) * 1000
        version = results[0]["model_version"] if results else ""
        return BatchResponse(
            results=[PredictResponse(**r, latency_ms=latency) for r in results],
            model_version=version,
            latency_ms=latency,
        )

    # ------------------------------------------------------------ classes
    @api.get("/classes", response_model=list[ClassInfo], responses=_AUTH_ERRORS)
    async def classes(self, request: Request) -> list[ClassInfo]:
        """Trained classes of the served model, then the classes registered at runtime (from the store)."""
        self._reader(request)
        info = await self.model.info.remote()
        registered = self.store.list_classes()
        names = {r.name for r in registered}
        trained = [ClassInfo(name=c, source="model") for c in info["classes"] if c not in names]
        return trained + [ClassInfo(source="registered", **r.summary()) for r in registered]

    @api.post(
        "/classes",
        status_code=201,
        response_model=ClassInfo,
        responses={
            409: {"model": ErrorResponse},
            413: {"model": ErrorResponse},
            422: {"model": ErrorResponse},
            **_AUTH_ERRORS,
        },
    )
    async def add_class(self, body: ClassIn, request: Request) -> ClassInfo:
        """Register a class from K support light curves and/or lake object ids; live on every replica within seconds."""
        from cosmic_ray.serve.db import ConflictError, StoreError

        principal = auth.require_writer(self._principal(request))
        n = len(body.lightcurves) + len(body.object_ids)
        if n > self.settings.max_support:
            raise HTTPException(
                status_code=413, detail=f"{n} support objects exceed the limit of {self.settings.max_support}"
            )
        info = await self.model.info.remote()
        if body.name in set(info["classes"]) - set(info["registered_classes"]):
            raise HTTPException(
                status_code=409, detail=f"{body.name!r} is a trained class of model version {info['version']}"
            )
        support = []
        for lc in body.lightcurves:
            points = [p.model_dump() for p in lc.points]
            if all(p["is_limit"] for p in points):
                raise HTTPException(
                    status_code=422, detail=f"support light curve {lc.object_id!r} has no detection (only upper limits)"
                )
            support.append({"object_id": lc.object_id, "points": points})
        if body.object_ids:
            found = await asyncio.to_thread(self._lake_support, body.object_ids)
            missing = [o for o in body.object_ids if o not in found]
            if missing:
                raise HTTPException(status_code=422, detail=f"no usable light curve in the lake for {missing[:20]}")
            support.extend({"object_id": o, "points": found[o]} for o in body.object_ids)
        try:
            record = await asyncio.to_thread(self.store.add_class, body.name, support, principal.username)
        except ConflictError as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc
        except StoreError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        await self.model.sync_classes.remote()
        return ClassInfo(source="registered", **record.summary())

    def _lake_support(self, object_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Detections of the given objects in the lake, as points."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from cosmic_ray.ingest.lake import Lake
        from cosmic_ray.learn.features import MODEL_SOURCES

        table = Lake(self.settings.lake_dir).read()
        mask = pc.and_(pc.is_in(table.column("object_id"), pa.array(object_ids)), pc.invert(table.column("is_limit")))
        mask = pc.and_(mask, pc.is_in(table.column("source"), pa.array(MODEL_SOURCES)))
        table = table.filter(pc.and_(mask, pc.is_valid(table.column("mag")))).select(
            ["object_id", "mjd", "band", "mag", "magerr"]
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for row in table.to_pylist():
            out.setdefault(row.pop("object_id"), []).append({**row, "magerr": row["magerr"] or 0.0, "is_limit": False})
        return out

    @api.delete(
        "/classes/{name}",
        status_code=204,
        responses={404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}, **_AUTH_ERRORS},
    )
    async def remove_class(self, name: str, request: Request) -> Response:
        from cosmic_ray.serve.db import NotFoundError

        auth.require_writer(self._principal(request))
        try:
            await asyncio.to_thread(self.store.remove_class, name)
        except NotFoundError as exc:
            info = await self.model.info.remote()
            if name in info["classes"]:
                raise HTTPException(status_code=409, detail=f"{name!r} is a trained class: retrain without it") from exc
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        await self.model.sync_classes.remote()
        return Response(status_code=204)

    # ------------------------------------------------------------ alerts, similarity
    @api.get("/alerts", response_model=list[AlertRecord], responses=_AUTH_ERRORS)
    async def alerts(
        self,
        request: Request,
        class_: str | None = Query(None, alias="class", max_length=64, description="Only this class."),
        rare: bool | None = Query(None, description="Only rare (true) or only not rare (false)."),
        since: datetime | None = Query(
            None, description="Classified at or after this time (ISO 8601; UTC if no zone)."
        ),
        limit: int = Query(100, ge=1, le=1000),
    ) -> list[AlertRecord]:
        """Recent classified alerts of the live path, newest first."""
        self._reader(request)
        rows = await asyncio.to_thread(self.store.recent_alerts, class_, rare, since, limit)
        return [AlertRecord.model_validate(r) for r in rows]

    @api.get("/candidates", response_model=list[AlertRecord], responses=_AUTH_ERRORS)
    async def candidates(
        self,
        request: Request,
        class_: str = Query(
            alias="class", min_length=1, max_length=64, description="The class to rank by, e.g. SLSN-I."
        ),
        since: datetime | None = Query(
            None, description="Classified at or after this time (ISO 8601; UTC if no zone)."
        ),
        limit: int = Query(50, ge=1, le=1000),
    ) -> list[AlertRecord]:
        """A follow-up list: the live path's objects ranked by their probability of one class, each
        object once (its most probable alert), highest first. From 5 examples the top 5% of objects
        held ~70% of the SLSN-I in cross-validation (bench/README.md), far more than are called SLSN-I."""
        self._reader(request)
        rows = await asyncio.to_thread(self.store.top_candidates, class_, since, limit)
        return [AlertRecord.model_validate(r) for r in rows]

    @api.get(
        "/objects/{object_id}/similar",
        response_model=SimilarResponse,
        responses={404: {"model": ErrorResponse}, **_AUTH_ERRORS},
    )
    async def similar(self, object_id: str, request: Request, k: int = Query(10, ge=1, le=100)) -> SimilarResponse:
        """Find more like this: the nearest objects of the lake in the served model's embedding space."""
        self._reader(request)
        found = await self.model.similar.remote(object_id, k)
        if found is None:
            raise HTTPException(
                status_code=404, detail=f"object {object_id!r} is neither in the lake nor a reference object"
            )
        return SimilarResponse.model_validate(found)

    @api.get(
        "/objects/{object_id}/lightcurve",
        response_model=ObjectLightCurve,
        responses={404: {"model": ErrorResponse}, **_AUTH_ERRORS},
    )
    async def lightcurve(self, object_id: str, request: Request) -> ObjectLightCurve:
        """The object's points in the lake (detections and upper limits, every source), by time."""
        self._reader(request)
        found = await asyncio.to_thread(self._lake_lightcurve, object_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"object {object_id!r} is not in the lake")
        return found

    def _lake_lightcurve(self, object_id: str) -> ObjectLightCurve | None:
        import pyarrow.compute as pc

        from cosmic_ray.ingest.lake import Lake

        table = Lake(self.settings.lake_dir).read()
        table = table.filter(pc.equal(table.column("object_id"), object_id))
        if table.num_rows == 0:
            return None
        rows = sorted(
            table.select(["mjd", "band", "mag", "magerr", "is_limit", "label", "source"]).to_pylist(),
            key=lambda r: r["mjd"],
        )
        labels = [r["label"] for r in rows if r["label"]]
        return ObjectLightCurve(
            object_id=object_id,
            label=labels[0] if labels else None,
            sources=sorted({r["source"] for r in rows}),
            points=rows,
        )

    # ------------------------------------------------------------ accounts (the web login)
    @api.post(
        "/auth/login", response_model=Me, responses={401: {"model": ErrorResponse}, 429: {"model": ErrorResponse}}
    )
    async def login(self, body: LoginRequest, request: Request) -> JSONResponse:
        """Check a username and password; on success set the ``cr_session`` cookie."""
        address = auth.client_address(request, self.settings.trusted_proxies)
        account = body.username.lower()
        wait = max(self.logins_by_address.retry_after(address), self.logins_by_account.retry_after(account))
        if wait:
            raise HTTPException(
                status_code=429, detail="too many login attempts: try again later", headers={"Retry-After": str(wait)}
            )
        principal = await asyncio.to_thread(self.accounts.authenticate, body.username, body.password)
        if principal is None:  # failures count, so users behind one shared address are not locked out by logging in
            self.logins_by_address.hit(address)
            self.logins_by_account.hit(account)
            log.info("failed login for an account from %s", address)
            raise HTTPException(status_code=401, detail="invalid username or password")
        self.logins_by_account.reset(account)
        session_id, expires = await asyncio.to_thread(
            self.accounts.create_session, principal.username, timedelta(hours=self.settings.session_hours)
        )
        response = JSONResponse(Me(username=principal.username, role=principal.role).model_dump())
        response.headers.append("set-cookie", auth.session_cookie(session_id, expires, self.settings.cookie_secure))
        return response

    @api.post("/auth/logout", status_code=204)
    async def logout(self, request: Request) -> Response:
        """End the cookie's session (if any) and clear the cookie."""
        session = request.cookies.get(auth.SESSION_COOKIE)
        if session:
            await asyncio.to_thread(self.accounts.delete_session, session)
        response = Response(status_code=204)
        response.headers.append("set-cookie", auth.clear_session_cookie(self.settings.cookie_secure))
        return response

    @api.get("/auth/me", response_model=Me, responses={401: {"model": ErrorResponse}})
    async def me(self, request: Request) -> Me:
        principal = self._principal(request)
        if principal is None:
            raise auth.unauthorized()
        return Me(username=principal.username, role=principal.role)


# ---------------------------------------------------------------- app builder
def build_app(args: dict[str, Any] | None = None) -> serve.Application:
    """The Serve application: ``Ingress -> ProtoNetModel``, with per-deployment options from ``args``."""
    parsed = AppArgs.model_validate(args or {})
    plain = parsed.model_dump(exclude={"deployments"})
    options = {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in parsed.deployments}
    model = ProtoNetModel.options(**options.get("ProtoNetModel", {})).bind(plain)
    return Ingress.options(**options.get("Ingress", {})).bind(model, plain)
