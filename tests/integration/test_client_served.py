"""The Python client against the served app (the session's real Ray Serve application, not mocked):
predictions, the live path's reads, a lake object's light curve and similar objects, expert labels
with real tokens; cone search, object summary, cutouts and watchlists where this build serves them."""

from __future__ import annotations

import pytest

from cosmic_ray.client import AuthError, Client, ValidationError

OBJECT = "ZTF21abiuvdk"  # SN 2021rhu: its real alerts are in the session's lake

LIGHTCURVE = {
    "object_id": "client-test-1",
    "points": [
        {"mjd": 59000.1, "band": "g", "mag": 19.2, "magerr": 0.08},
        {"mjd": 59003.2, "band": "r", "mag": 18.7, "magerr": 0.06},
        {"mjd": 59007.1, "band": "g", "mag": 18.5, "magerr": 0.05},
        {"mjd": 59012.0, "band": "r", "mag": 18.9, "magerr": 0.07},
    ],
}


def test_the_client_predicts_and_reads_the_served_model(served, trained):
    with Client(served) as api:
        assert api.health()["model_version"] == trained.version
        model = api.model()
        assert model["version"] == trained.version and set(trained.classes) <= set(model["classes"])
        one = api.predict(LIGHTCURVE)
        assert one["object_id"] == "client-test-1" and one["class"] in model["classes"]
        assert abs(sum(one["probabilities"].values()) - 1) < 1e-3 and 0 <= one["open_set_score"] <= 1
        many = api.predict_batch([LIGHTCURVE, {**LIGHTCURVE, "object_id": "client-test-2"}])
        assert [p["object_id"] for p in many] == ["client-test-1", "client-test-2"]
        assert many[0]["class"] == one["class"]
        with pytest.raises(ValidationError) as bad:
            api.predict({"object_id": "x", "points": [{"mjd": 1.0, "band": "g", "mag": 1e300}]})
        assert bad.value.status == 422 and "mag" in str(bad.value)


def test_the_client_reads_a_lake_object(served):
    with Client(served) as api:
        table = api.lightcurve(OBJECT)
        assert len(table) >= 10 and str(table["mjd"].unit) == "d"
        assert list(table["mjd"]) == sorted(table["mjd"])
        frame = api.lightcurve(OBJECT, as_="pandas")
        assert len(frame) == len(table) and set(frame["object_id"]) == {OBJECT}
        similar = api.similar(OBJECT, k=3)
        assert similar["object_id"] == OBJECT and len(similar["neighbours"]) == 3


def test_labels_through_the_client_with_real_tokens(served, accounts):
    with Client(served, token=accounts["astronomer"]) as astronomer, Client(served, token=accounts["viewer"]) as viewer:
        # "interesting": a class answer would change what later retrains of this session train on
        added = astronomer.add_label(OBJECT, "interesting", note="client test: early bump")
        assert added["user"] == "ada" and added["kind"] == "interesting" and added["class"] is None
        assert any(x["note"] == "client test: early bump" and x["user"] == "ada" for x in viewer.labels(OBJECT))
        with pytest.raises(AuthError) as refused:
            viewer.add_label(OBJECT, "bogus")
        assert refused.value.status == 403


def test_cone_search_object_cutouts_and_watchlists(served, accounts):
    """The client's calls of the sky, cutout and watchlist routes against the served app."""
    with Client(served, token=accounts["astronomer"]) as api:
        page = api.cone_search(ra=0.8143, dec=16.1457, radius=0.01)
        assert OBJECT in [o["object_id"] for o in page["objects"]]
        assert api.object(OBJECT)["object_id"] == OBJECT
        png = api.cutouts(OBJECT)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        made = api.create_watchlist("client test", [{"name": "rhu", "ra": 0.8143, "dec": 16.1457, "radius_arcsec": 5}])
        assert made["id"] in [w["id"] for w in api.watchlists()]
        api.delete_watchlist(made["id"])
        assert made["id"] not in [w["id"] for w in api.watchlists()]
