"""Issue 16, item 1, at the API boundary without Ray: ``/predict`` bodies with a ``context`` object are
validated from their bytes (nonsense is a 422 with where), the context travels in the model item,
and an alert's item carries the alert's own context (its PS1 host), read by the same parser as ingest."""

from __future__ import annotations

import json
from pathlib import Path

import fastavro
import pytest
from fastapi.exceptions import RequestValidationError

from cosmic_ray.serve.parsing import parse_json_body, request_to_item
from cosmic_ray.serve.schemas import PredictRequest

GALAXY_ALERT = "pittgoogle/alerts-for-testing/ZTF18aamyaaj.1704217901015015001.ztf_20210901_programid1.avro"
POINTS = [{"mjd": 59000.0 + i, "band": "gr"[i % 2], "mag": 19.0 - 0.1 * i, "magerr": 0.05} for i in range(4)]


def _body(**extra: object) -> bytes:
    return json.dumps({"lightcurve": {"object_id": "x", "points": POINTS}, **extra}).encode()


def _alert(path: Path) -> dict:
    with open(path, "rb") as handle:
        record = next(iter(fastavro.reader(handle)))
    return {k: v for k, v in record.items() if not k.startswith("cutout")}


def test_a_light_curves_context_travels_in_the_model_item():
    item = request_to_item(parse_json_body(PredictRequest, _body(context={"host_mag": 18.5, "redshift": 0.05})))
    assert item.context is not None and item.context["host_mag"] == 18.5 and item.context["redshift"] == 0.05
    assert item.context["gal_b"] is None  # not given: missing
    assert request_to_item(parse_json_body(PredictRequest, _body())).context is None


@pytest.mark.parametrize(
    ("context", "where"),
    [
        ({"gal_b": 95.0}, "gal_b"),
        ({"gal_b": -90.5}, "gal_b"),
        ({"redshift": -0.1}, "redshift"),
        ({"a_v": -1.0}, "a_v"),
        ({"host_offset_arcsec": -2.0}, "host_offset_arcsec"),
        ({"dec": 91.0}, "dec"),
        ({"host_mag": "bright"}, "host_mag"),
        ({"distance": 3.0}, "distance"),  # unknown field
    ],
)
def test_nonsense_context_is_refused_with_where(context, where):
    with pytest.raises(RequestValidationError) as caught:
        parse_json_body(PredictRequest, _body(context=context))
    locs = [list(e["loc"]) for e in caught.value.errors()]
    assert ["body", "context", where] in locs


def test_infinite_context_is_refused():
    raw = _body(context={"redshift": 1.0}).replace(b'"redshift": 1.0', b'"redshift": 1e400')
    assert b"1e400" in raw
    with pytest.raises(RequestValidationError) as caught:
        parse_json_body(PredictRequest, raw)
    assert ["body", "context", "redshift"] in [list(e["loc"]) for e in caught.value.errors()]


def test_an_alert_brings_its_own_context(shared_data):
    alert = _alert(shared_data / "ztf-alerts" / GALAXY_ALERT)
    item = request_to_item(PredictRequest(alert=alert))
    assert item.object_id == "ZTF18aamyaaj" and item.context is not None
    assert item.context["host_mag"] == pytest.approx(17.3889, abs=1e-3)  # srmag1 of a PS1 galaxy 0.41" away
    assert item.context["nuclear_dist_arcsec"] == pytest.approx(0.4916, abs=1e-3)
    assert item.context["redshift"] is None and item.context["source"] == "ztf_alert"
    with pytest.raises(RequestValidationError) as caught:
        parse_json_body(PredictRequest, json.dumps({"alert": alert, "context": {"redshift": 0.1}}).encode())
    assert "carries its own context" in str(caught.value.errors())
