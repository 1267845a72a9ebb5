"""Predictions: ``POST /predict`` (one alert or light curve), ``POST /predict/batch`` (readers)."""

# No `from __future__ import annotations`: FastAPI must see real types on the routes.

import time

from fastapi import APIRouter, HTTPException, Request, Response

from cosmic_ray.serve.deps import AUTH_ERRORS, Ctx, Reader
from cosmic_ray.serve.parsing import json_body, parse_json_body, request_to_item
from cosmic_ray.serve.schemas import BatchRequest, BatchResponse, ErrorResponse, PredictRequest, PredictResponse

router = APIRouter()


@router.post(
    "/predict",
    response_model=PredictResponse,
    openapi_extra=json_body(PredictRequest),
    responses={413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, **AUTH_ERRORS},
)
async def predict(request: Request, ctx: Ctx, _: Reader) -> Response:
    """One alert or light curve. The body is validated straight from its bytes (pydantic's JSON
    parser: no ``json.loads`` + validation of the Python objects, the hot path's largest cost
    in this process) and the answer serialised once."""
    start = time.perf_counter()
    body = parse_json_body(PredictRequest, await request.body())
    (result,) = await ctx.predict_items([request_to_item(body, ctx.settings.context_host_max_arcsec)])
    if "error" in result:
        raise HTTPException(status_code=422, detail=result["error"])
    ctx.count([result])
    answer = PredictResponse(**result, latency_ms=(time.perf_counter() - start) * 1000)
    return Response(answer.model_dump_json(by_alias=True), media_type="application/json")


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    responses={413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, **AUTH_ERRORS},
)
async def predict_batch(body: BatchRequest, ctx: Ctx, _: Reader) -> BatchResponse:
    start = time.perf_counter()
    if len(body.items) > ctx.settings.max_batch:
        raise HTTPException(
            status_code=413, detail=f"batch of {len(body.items)} exceeds the limit of {ctx.settings.max_batch}"
        )
    items = [request_to_item(item, ctx.settings.context_host_max_arcsec) for item in body.items]
    results = await ctx.predict_items(items)
    bad = [i for i, r in enumerate(results) if "error" in r]
    if bad:
        raise HTTPException(status_code=422, detail=f"items {bad}: no usable detection")
    ctx.count(results)
    latency = (time.perf_counter() - start) * 1000
    version = results[0]["model_version"] if results else ""
    return BatchResponse(
        results=[PredictResponse(**r, latency_ms=latency) for r in results],
        model_version=version,
        latency_ms=latency,
    )
