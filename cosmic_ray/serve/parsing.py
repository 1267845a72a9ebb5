"""Request parsing of the API: bodies validated straight from their bytes, requests to model items,
and the 422 answer for what fails validation.

Example:
    >>> body = parse_json_body(PredictRequest, b'{"lightcurve": {"object_id": "x", "points": '
    ...                        b'[{"mjd": 60000.5, "band": "g", "mag": 19.0}]}}')
    >>> request_to_item(body).object_id
    'x'
"""

# No `from __future__ import annotations`: FastAPI must see real types on the exception handler.

from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from cosmic_ray.core.errors import BadAlertError
from cosmic_ray.serve.items import ModelItem, Row, lightcurve_rows
from cosmic_ray.serve.schemas import MAG_MAX, MAG_MIN, MAGERR_MAX, PredictRequest
from cosmic_ray.sources import ztf
from cosmic_ray.sources.ztf_context import HOST_MAX_ARCSEC, context_of_alert


def request_to_item(body: PredictRequest, host_max_arcsec: float = HOST_MAX_ARCSEC) -> ModelItem:
    """A validated request -> the model's item, with the light curve's given context or the alert's own.

    Args:
        body: the validated request.
        host_max_arcsec: farthest PS1 galaxy an alert's context takes for the host.

    Raises:
        HTTPException: 422 when the alert cannot be read or the light curve has no detection.
    """
    context: dict[str, Any] | None = None
    if body.alert is not None:
        try:
            rows, context = alert_rows_and_context(body.alert, host_max_arcsec)
        except BadAlertError as exc:
            raise HTTPException(status_code=422, detail=f"bad alert: {exc}") from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise HTTPException(
                status_code=422, detail=f"bad alert: malformed field ({type(exc).__name__}: {exc})"
            ) from exc
        rows = [r for r in rows if r["source"] == "ztf_alert"]
        problem = out_of_range(rows)
        if problem:
            raise HTTPException(status_code=422, detail=f"bad alert: {problem}")
        object_id = str(body.alert.get("objectId"))
    elif body.lightcurve is not None:
        rows = lightcurve_rows(body.lightcurve)
        object_id = body.lightcurve.object_id
        context = body.context.model_dump() if body.context is not None else None
    else:  # PredictRequest refuses this; kept for a request built without validation
        raise HTTPException(status_code=422, detail="give exactly one of 'alert' or 'lightcurve'")
    if not any(not r["is_limit"] for r in rows):
        raise HTTPException(status_code=422, detail="the light curve has no detection (only upper limits)")
    return ModelItem(object_id=object_id, rows=rows, context=context)


def alert_rows_and_context(alert: dict[str, Any], host_max_arcsec: float) -> tuple[list[Row], dict[str, Any]]:
    """An alert posted as JSON -> (its points, as :func:`cosmic_ray.sources.ztf.alert_to_rows` gives them; its context).

    Raises:
        BadAlertError: not a ZTF alert, or its candidate is unusable.
    """
    table, meta, bad = ztf.records_to_tables([ztf.check_alert(alert)])
    if bad:
        raise BadAlertError(bad[0][1])
    return table.to_pylist(), context_of_alert(meta.to_pylist()[0], host_max_arcsec)


def out_of_range(rows: list[Row]) -> str | None:
    """What is wrong with the first point of ``rows`` whose magnitude or error is outside the
    ranges a light curve's points are held to (:class:`~cosmic_ray.serve.schemas.PointIn`), else None.

    An alert's numbers are only checked to be finite by the parser (a 300-digit ``magpsf`` is a
    finite float); the model must not see values no light curve could carry.
    """
    for r in rows:
        mag, err = r.get("mag"), r.get("magerr")
        kind = "limiting magnitude" if r.get("is_limit") else "magnitude"
        if mag is not None and not MAG_MIN <= mag <= MAG_MAX:
            return f"{kind} {mag:.6g} at MJD {r['mjd']:.5f} is outside {MAG_MIN:g}..{MAG_MAX:g}"
        if err is not None and not 0 <= err <= MAGERR_MAX:
            return f"magnitude error {err:.6g} at MJD {r['mjd']:.5f} is outside 0..{MAGERR_MAX:g}"
    return None


def json_body(model: type[BaseModel]) -> dict[str, Any]:
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


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with where and why, without echoing the input (it may be huge, secret or not JSON-encodable)."""
    assert isinstance(exc, RequestValidationError)  # registered for this exception only
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": errors})
