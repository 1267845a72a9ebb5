"""The object page's resources over real HTTP (issue 19, items 4 and 5), without Ray.

A real lake holds the stamps of real ZTF packets (``Lake.append_alerts``, as ingest does); the
cutouts and crossmatches routers run in uvicorn with a real SQLite store behind the context:

- ``/objects/{id}/cutouts``: one PNG with the three stamps side by side (signature, width ~3x
  height), ``kind=`` one stamp, ``format=fits`` the FITS file (astropy opens it), 404 and 422 with
  messages;
- ``/objects/{id}/crossmatches``: the alert's own PS1/Gaia/solar-system matches, catalogue matches
  within the radius with separations (the hand-checked SLSN/BTS overlaps), links out.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest
from astropy.io import fits
from fastapi import FastAPI
from PIL import Image

from cosmic_ray.core.config import Settings
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.serve.routes import crossmatches, cutouts
from cosmic_ray.serve.store import Store
from cosmic_ray.sources import ztf
from cosmic_ray.sources.base import RawInput

try:
    from web_server import serve_app
except ImportError:  # tests/ made a package
    from tests.web_server import serve_app

try:
    from api_context import configured
except ImportError:  # tests/ made a package
    from tests.api_context import configured

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[3]
OVERLAPS = REPO / "tests" / "fixtures" / "crossmatch_slsn_bts_overlaps.json"
SN2021RHU = "ZTF21abiuvdk"


@pytest.fixture(scope="module")
def api(tmp_path_factory, shared_data):
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, shared_data=shared_data)
    packets = sorted(p for p in (shared_data / "ztf-alerts").rglob("*.avro") if "DC21" not in p.name)
    parsed = ztf.parse_many([RawInput(str(p), p.read_bytes()) for p in packets])
    lake = Lake(settings.lake_dir)
    lake.append(parsed.table)
    lake.append_alerts(parsed.alert_meta)
    store = Store.open(settings.event_store_url)
    app = FastAPI()
    app.include_router(cutouts.router)
    app.include_router(crossmatches.router)
    with configured(settings, store), serve_app(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, parsed.alert_meta
    store.close()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_default_answer_is_the_latest_alerts_three_stamps_side_by_side(api):
    client, _ = api
    listing = client.get(f"/objects/{SN2021RHU}/cutouts/alerts")
    assert listing.status_code == 200
    body = listing.json()
    assert len(body["alerts"]) == 34 and body["latest"] == body["alerts"][-1]["candid"]
    assert body["alerts"][0]["kinds"] == ["science", "template", "difference"]
    assert body["latest_str"] == str(body["latest"]) and all(
        a["candid_str"] == str(a["candid"]) for a in body["alerts"]
    )
    answer = client.get(f"/objects/{SN2021RHU}/cutouts")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert answer.headers["x-candid"] == str(body["latest"])
    width, height = _png_size(answer.content)
    assert 2.6 < width / height < 3.2 and height >= 63
    pixels = np.asarray(Image.open(io.BytesIO(answer.content)))
    assert pixels.std() > 10  # a picture, not a blank


def test_one_stamp_of_a_chosen_alert_and_its_fits_file(api):
    client, meta = api
    rows = zip(meta.column("object_id").to_pylist(), meta.column("alert_candid").to_pylist(), strict=True)
    candid = next(c for o, c in rows if o == "ZTF18abdqake")
    one = client.get("/objects/ZTF18abdqake/cutouts", params={"candid": candid, "kind": "difference"})
    assert one.status_code == 200
    width, height = _png_size(one.content)
    assert width < height * 1.5  # one stamp (this edge stamp is 53 px wide, 63 high)
    raw = client.get("/objects/ZTF18abdqake/cutouts", params={"candid": candid, "kind": "science", "format": "fits"})
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(io.BytesIO(raw.content), ignore_missing_simple=True) as hdus:
            assert hdus[0].data.shape == (63, 53)


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("/objects/ZTF00nothere/cutouts", {}, 404, "no stored cutouts"),
        (f"/objects/{SN2021RHU}/cutouts", {"candid": 1}, 404, "alerts with stamps"),
        (f"/objects/{SN2021RHU}/cutouts", {"format": "jpeg"}, 422, "'png' or 'fits'"),
        (f"/objects/{SN2021RHU}/cutouts", {"kind": "rgb"}, 422, "'science'"),
        (f"/objects/{SN2021RHU}/cutouts", {"format": "fits"}, 422, "give kind="),
        (f"/objects/{SN2021RHU}/cutouts", {"candid": "x"}, 422, "integer"),
        ("/objects/ZTF00nothere/cutouts/alerts", {}, 404, "no stored cutouts"),
        ("/objects/nowhere-at-all/crossmatches", {}, 404, "no known position"),
        (f"/objects/{SN2021RHU}/crossmatches", {"radius": -1}, 422, "greater than 0"),
    ],
)
def test_bad_requests_are_answered_with_a_message(api, path, params, status, says):
    client, _ = api
    answer = client.get(path, params=params)
    assert answer.status_code == status, answer.text
    assert says in json.dumps(answer.json()["detail"]), answer.text


def test_crossmatches_give_the_alerts_own_matches_and_links_out(api):
    client, _ = api
    answer = client.get(f"/objects/{SN2021RHU}/crossmatches")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["position_from"] == "alert" and abs(body["ra"] - 0.81429) < 1e-3 and abs(body["dec"] - 16.14568) < 1e-3
    assert body["alert"]["ps1"]["distance_arcsec"] == pytest.approx(3.88, abs=0.2)
    assert 0 <= body["alert"]["ps1"]["sgscore"] <= 1
    assert body["alert"]["gaia"]["distance_arcsec"] > 0 and body["alert"]["solar_system"] is None
    links = {link["service"]: link["url"] for link in body["links"]}
    assert links["ALeRCE"] == f"https://alerce.online/object/{SN2021RHU}"
    assert links["Fink"] == f"https://fink-portal.org/{SN2021RHU}"
    assert links["Legacy Survey"].startswith("https://www.legacysurvey.org/viewer?ra=0.81")
    assert "layer=ls-dr10" in links["Legacy Survey"] and "simbad" in links["SIMBAD"]


def test_the_hand_checked_overlaps_of_the_shared_catalogues_are_found(api):
    client, _ = api
    pairs = json.loads(OVERLAPS.read_text())["pairs"]
    assert len(pairs) >= 5
    for pair in pairs:
        # a BTS object known only to the catalogues: its position comes from its BTS row
        answer = client.get(f"/objects/{pair['bts_ztf_id']}/crossmatches")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["position_from"] == "catalogue"
        found = {(m["catalogue"], m["name"]): m for m in body["matches"]}
        slsn = found[("SLSN", pair["slsn_name"])]
        assert slsn["separation_arcsec"] == pytest.approx(pair["separation_arcsec"], abs=0.01)
        assert slsn["label"] == "SLSN-I" and found[("BTS", pair["bts_ztf_id"])]["separation_arcsec"] < 1e-6
        iau = pair["bts_iau_name"].removeprefix("SN").removeprefix("AT")
        assert body["tns_name"] == iau
        tns = next(link["url"] for link in body["links"] if link["service"] == "TNS")
        assert tns == f"https://www.wis-tns.org/object/{iau}"
    narrow = client.get(f"/objects/{pairs[0]['bts_ztf_id']}/crossmatches", params={"radius": 0.01}).json()
    assert [m["catalogue"] for m in narrow["matches"]] == ["BTS"]  # the SLSN entry is 0.09" away
