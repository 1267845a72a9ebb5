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
from cosmic_ray.serve.items import ModelItem, lightcurve_rows
from cosmic_ray.serve.schemas import PredictRequest
from cosmic_ray.sources import ztf


def request_to_item(body: PredictRequest) -> ModelItem:
    """A validated request -> the model's item.

    Raises:
        HTTPException: 422 when the alert cannot be read or the light curve has no detection.
    """
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
    elif body.lightcurve is not None:
        rows = lightcurve_rows(body.lightcurve)
        object_id = body.lightcurve.object_id
    else:  # PredictRequest refuses this; kept for a request built without validation
        raise HTTPException(status_code=422, detail="give exactly one of 'alert' or 'lightcurve'")
    if not any(not r["is_limit"] for r in rows):
        raise HTTPException(status_code=422, detail="the light curve has no detection (only upper limits)")
    return ModelItem(object_id=object_id, rows=rows)


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
