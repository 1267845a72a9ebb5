"""Ray Serve deployments behind a FastAPI ingress, built by a typed app builder.

``build_app`` is the import path of configs/serve.yaml (``cosmic_ray.serve:build_app``), used
alike by ``cosmic-ray serve up``, ``serve deploy configs/serve.yaml`` and the KubeRay RayService.
"""

# No `from __future__ import annotations` here: FastAPI must see real types on the ingress methods.

import asyncio
import logging
import threading
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve.handle import DeploymentHandle

from cosmic_ray.api_models import (
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    Health,
    ModelInfo,
    PredictRequest,
    PredictResponse,
)
from cosmic_ray.config import Settings
from cosmic_ray.errors import BadAlertError

log = logging.getLogger(__name__)


class AppArgs(BaseModel):
    """Arguments of the application (``args:`` in configs/serve.yaml)."""

    model_config = ConfigDict(extra="forbid")

    rare_classes: list[str] = Field(default_factory=lambda: ["SLSN-I", "SLSN-II", "TDE", "SN Ibn/Icn"])
    novelty_threshold: float = Field(default=0.95, gt=0, le=1)
    model_poll_seconds: float = Field(default=15.0, gt=0)
    neighbours: int = Field(default=5, ge=0, le=50)
    # Optional overrides of the environment's settings (tests and local runs pass them explicitly).
    home: str | None = None
    mlflow_tracking_uri: str | None = None
    max_batch: int | None = None
    max_body_bytes: int | None = None
    # Per-deployment option overrides (the `deployments:` list of a Serve config) for `serve.run`.
    deployments: list[dict[str, Any]] = Field(default_factory=list)

    def settings(self) -> Settings:
        overrides = {k: v for k, v in {"home": self.home, "mlflow_tracking_uri": self.mlflow_tracking_uri,
                                       "max_batch": self.max_batch, "max_body_bytes": self.max_body_bytes}.items() if v is not None}
        return Settings(**overrides)


# ---------------------------------------------------------------- model deployment
@serve.deployment(max_ongoing_requests=128)
class ProtoNetModel:
    """Holds the production classifier; batches light curves; follows the registry's alias."""

    def __init__(self, args: dict[str, Any]):
        from cosmic_ray import registry

        self.args = AppArgs.model_validate(args)
        self.settings = self.args.settings()
        self._registry = registry
        classifier, registered = registry.load_model(self.settings)
        classifier.novelty_threshold = self.args.novelty_threshold
        self._current = (classifier, registered)  # swapped atomically as one tuple
        self.last_reload_error: str | None = None
        self._stop = threading.Event()
        threading.Thread(target=self._follow_registry, daemon=True, name="model-poller").start()

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        self.predict.set_max_batch_size(int(user_config.get("max_batch_size", 64)))
        self.predict.set_batch_wait_timeout_s(float(user_config.get("batch_wait_timeout_s", 0.005)))

    def _follow_registry(self) -> None:
        while not self._stop.wait(self.args.model_poll_seconds):
            self.check_for_new_model()

    def check_for_new_model(self) -> str:
        """Load the production version beside the current one and switch if it changed."""
        try:
            latest = self._registry.production_version(self.settings)
            if latest is None or latest.version == self._current[1].version:
                return self._current[1].version
            classifier, registered = self._registry.load_model(self.settings, latest.version)
            classifier.novelty_threshold = self.args.novelty_threshold
            self._current = (classifier, registered)
            self.last_reload_error = None
            log.info("now serving %s version %s", registered.name, registered.version)
        except Exception as exc:  # a bad version leaves the old one serving
            self.last_reload_error = f"{type(exc).__name__}: {exc}"
            log.warning("model reload failed, keeping version %s: %s", self._current[1].version, exc)
        return self._current[1].version

    def info(self) -> dict[str, Any]:
        classifier, registered = self._current
        return ModelInfo(
            name=registered.name,
            version=registered.version,
            run_id=registered.run_id,
            classes=classifier.class_names,
            trained_at=classifier.meta.get("trained_at"),
            meta=classifier.meta,
            last_reload_error=self.last_reload_error,
        ).model_dump()

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.005)
    async def predict(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each item ``{"object_id", "rows"}`` -> prediction dict; one featurize + forward per batch."""
        from cosmic_ray.features import featurize
        from cosmic_ray.lightcurve import rows_to_table

        classifier, registered = self._current
        rows = []
        for i, item in enumerate(items):  # internal ids: two items may share an object_id
            rows.extend({**r, "object_id": str(i)} for r in item["rows"])
        arrays = featurize(rows_to_table(rows), classifier.max_len)
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
                }
            )
        return out


# ---------------------------------------------------------------- ingress
api = FastAPI(
    title="cosmic_ray",
    description="Few-shot classification of astronomical alerts: known classes, rare classes, and what fits none.",
    version="0.1.0",
)


def request_to_item(body: PredictRequest) -> dict[str, Any]:
    """A validated request -> ``{"object_id", "rows"}`` for the model.

    Raises:
        HTTPException: 422 when the alert cannot be read or the light curve has no detection.
    """
    from cosmic_ray.lightcurve import mjd_to_night
    from cosmic_ray.sources import ztf

    if body.alert is not None:
        try:
            rows = ztf.alert_json_to_rows(body.alert)
        except BadAlertError as exc:
            raise HTTPException(status_code=422, detail=f"bad alert: {exc}") from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise HTTPException(status_code=422, detail=f"bad alert: malformed field ({type(exc).__name__}: {exc})") from exc
        rows = [r for r in rows if r["source"] == "ztf_alert"]
        object_id = str(body.alert.get("objectId"))
    else:
        lc = body.lightcurve
        rows = [
            {"object_id": lc.object_id, "source": "user", "mjd": p.mjd, "band": p.band, "mag": p.mag,
             "magerr": p.magerr, "is_limit": p.is_limit, "night": mjd_to_night(p.mjd)}
            for p in lc.points
        ]
        object_id = lc.object_id
    if not any(not r["is_limit"] for r in rows):
        raise HTTPException(status_code=422, detail="the light curve has no detection (only upper limits)")
    return {"object_id": object_id, "rows": rows}


@api.exception_handler(RequestValidationError)
async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with where and why, without echoing the input (it may be huge or not JSON-encodable, e.g. inf)."""
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": errors})


@api.middleware("http")
async def limit_body_size(request: Request, call_next):
    """Refuse bodies over the limit with 413 before reading them."""
    limit = Settings().max_body_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return JSONResponse(status_code=413, content={"detail": f"request body of {length} bytes exceeds the limit of {limit}"})
    return await call_next(request)


def _mount_pages() -> None:
    """Serve the web pages (web/) from the API's origin when the folder is there (a source checkout)."""
    from cosmic_ray.web import default_web_dir, mount_web

    if default_web_dir().is_dir():
        mount_web(api)


_mount_pages()


@serve.deployment(max_ongoing_requests=256)
@serve.ingress(api)
class Ingress:
    def __init__(self, model: DeploymentHandle, args: dict[str, Any]):
        self.model = model
        self.args = AppArgs.model_validate(args)
        self.settings = self.args.settings()

    async def _predict_items(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return await asyncio.gather(*(self.model.predict.remote(item) for item in items))

    @api.get("/healthz", response_model=Health)
    async def healthz(self) -> Health:
        info = await self.model.info.remote()
        return Health(status="ok", model_version=info["version"])

    @api.get("/model", response_model=ModelInfo)
    async def model_info(self) -> ModelInfo:
        return ModelInfo.model_validate(await self.model.info.remote())

    @api.get("/classes", response_model=list[str])
    async def classes(self) -> list[str]:
        return (await self.model.info.remote())["classes"]

    @api.post("/predict", response_model=PredictResponse, responses={413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}})
    async def predict(self, body: PredictRequest) -> PredictResponse:
        start = time.perf_counter()
        (result,) = await self._predict_items([request_to_item(body)])
        if "error" in result:
            raise HTTPException(status_code=422, detail=result["error"])
        return PredictResponse(**result, latency_ms=(time.perf_counter() - start) * 1000)

    @api.post("/predict/batch", response_model=BatchResponse, responses={413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}})
    async def predict_batch(self, body: BatchRequest) -> BatchResponse:
        start = time.perf_counter()
        if len(body.items) > self.settings.max_batch:
            raise HTTPException(status_code=413, detail=f"batch of {len(body.items)} exceeds the limit of {self.settings.max_batch}")
        items = [request_to_item(item) for item in body.items]
        results = await self._predict_items(items)
        bad = [i for i, r in enumerate(results) if "error" in r]
        if bad:
            raise HTTPException(status_code=422, detail=f"items {bad}: no usable detection")
        latency = (time.perf_counter() - start) * 1000
        version = results[0]["model_version"] if results else ""
        return BatchResponse(results=[PredictResponse(**r, latency_ms=latency) for r in results], model_version=version, latency_ms=latency)


# ---------------------------------------------------------------- app builder
def build_app(args: dict[str, Any] | None = None) -> serve.Application:
    """The Serve application: ``Ingress -> ProtoNetModel``, with per-deployment options from ``args``."""
    parsed = AppArgs.model_validate(args or {})
    plain = parsed.model_dump(exclude={"deployments"})
    options = {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in parsed.deployments}
    model = ProtoNetModel.options(**options.get("ProtoNetModel", {})).bind(plain)
    return Ingress.options(**options.get("Ingress", {})).bind(model, plain)
