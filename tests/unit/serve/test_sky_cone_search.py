"""Objects on the sky (issue 19, items 1-3), without Ray: a real Parquet lake of real ZTF alert
packets and BTS light curves (positions of the BTS objects from the real context table), the
object table in a real SQLite event store, the real routers on uvicorn, real HTTP.

- the object table: positions are the mean of the detections (context positions where the points
  carry none), first/last detection, counts, Galactic latitude, host;
- cone search against a brute-force check (astropy's ``SkyCoord.separation`` over every object),
  on the real objects and on CONSTRUCTED positions at both poles and across RA 0/360;
- Simple Cone Search: VOTables parsed back with ``astropy.io.votable`` (UCDs checked), errors as
  ``QUERY_STATUS=ERROR``; the JSON form's bad parameters answer 422 with a message;
- filters, pagination, the object summary, the light-curve download (JSON, CSV, VOTable).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io.votable import parse as parse_votable
from fastapi import FastAPI

from cosmic_ray.core.config import Settings
from cosmic_ray.core.lightcurve import conform, mjd_to_nights
from cosmic_ray.core.sky import cone_ranges, healpix_index
from cosmic_ray.ingest.batch import parse_inputs
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.serve.routes import objects, sky
from cosmic_ray.serve.skyobjects import ObjectTable, refresh_from_lake
from cosmic_ray.serve.store import Store

try:
    from web_server import serve_app
except ImportError:  # tests/ made a package
    from tests.web_server import serve_app

try:
    from api_context import configured
except ImportError:  # tests/ made a package
    from tests.api_context import configured

pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parents[3]
VOTABLE = "application/x-votable+xml"

# CONSTRUCTED positions (not real objects): both poles and both sides of RA 0/360
CONSTRUCTED = {
    "CONSTRUCTED_npole_a": (0.0, 89.9995),
    "CONSTRUCTED_npole_b": (180.0, 89.9993),
    "CONSTRUCTED_npole_c": (95.0, 89.998),
    "CONSTRUCTED_spole_a": (270.0, -89.9996),
    "CONSTRUCTED_spole_b": (10.0, -89.9990),
    "CONSTRUCTED_wrap_lo": (0.0004, 12.0),
    "CONSTRUCTED_wrap_hi": (359.9995, 12.0002),
    "CONSTRUCTED_wrap_eq": (359.9999, -0.0001),
    "CONSTRUCTED_wrap_eq2": (0.0002, 0.0003),
}


def _constructed_points() -> pa.Table:
    """Three detections per CONSTRUCTED object, scattered by ~0.1 arcsec around its position."""
    rng = np.random.default_rng(19)
    rows = []
    for oid, (ra, dec) in CONSTRUCTED.items():
        for k in range(3):
            mjd = 59400.0 + k
            rows.append(
                {
                    "object_id": oid,
                    "source": "constructed",
                    "mjd": mjd,
                    "band": "g",
                    "mag": 19.0,
                    "magerr": 0.1,
                    "is_limit": False,
                    "ra": (ra + rng.normal(0, 2e-5)) % 360.0,
                    "dec": float(np.clip(dec + rng.normal(0, 2e-5), -90, 90)),
                    "night": str(mjd_to_nights(np.array([mjd]))[0]),
                }
            )
    return conform(pa.Table.from_pylist(rows))


def _alert_files(shared: Path) -> list[Path]:
    z = shared / "ztf-alerts"
    return [
        *sorted((z / "pittgoogle" / "alerts-for-testing").glob("*.avro")),
        *sorted((z / "boom-v4.02").glob("*.avro")),
        *sorted((z / "pittgoogle" / "ZTF21abiuvdk_SN2021rhu_stream").glob("*.avro")),
    ]


@pytest.fixture(scope="module")
def home(tmp_path_factory, shared_data) -> Path:
    """A home whose lake holds the real alerts, the BTS light curves and context, and CONSTRUCTED positions."""
    home = tmp_path_factory.mktemp("sky")
    lake = Lake(home / "lake")
    quarantine = home / "quarantine"
    alerts = parse_inputs("ztf", [(str(p), None) for p in _alert_files(shared_data)], quarantine)
    bts = parse_inputs("catalog", [(str(shared_data / "ztf-bts" / "bts_dev_lightcurves.csv.gz"), None)], quarantine)
    for table in (alerts.points, bts.points, _constructed_points()):
        lake.append(table)
    context = pacsv.read_csv(shared_data / "ztf-bts" / "bts_dev_context.csv")
    (home / "lake" / "_context").mkdir()
    pq.write_table(context, home / "lake" / "_context" / "part-0.parquet")
    settings = Settings(home=home)
    refresh_from_lake(settings.lake_dir, settings.event_store_url)
    return home


@pytest.fixture(scope="module")
def store(home):
    s = Store.open(Settings(home=home).event_store_url)
    yield s
    s.close()


@pytest.fixture(scope="module")
def everything(store) -> dict[str, tuple[float, float]]:
    """Every positioned object of the table: id -> (ra, dec)."""
    page = store.objects.listing(limit=100_000)
    return {o["object_id"]: (o["ra"], o["dec"]) for o in page.objects if o["ra"] is not None}


@pytest.fixture(scope="module")
def url(home, store):
    settings = Settings(home=home)
    app = FastAPI()
    app.include_router(objects.router)
    app.include_router(sky.router)
    with configured(settings, store), serve_app(app) as base:
        yield base


def _truth(everything: dict[str, tuple[float, float]], ra: float, dec: float, radius_deg: float) -> set[str]:
    """Brute force: every object's separation from the centre by astropy."""
    ids = list(everything)
    pos = np.array([everything[i] for i in ids])
    sep = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(pos[:, 0] * u.deg, pos[:, 1] * u.deg)).deg
    return {i for i, s in zip(ids, sep, strict=True) if s <= radius_deg}


# ------------------------------------------------------------------------------ the object table
def test_the_object_table_summarises_the_lake(store, home, everything):
    lake = Lake(home / "lake")
    assert store.objects.count() == len(set(lake.read().column("object_id").to_pylist()))
    # a real alert object: the mean of its detections' positions, counts and first/last detection
    oid = "ZTF21abiuvdk"
    pts = lake.read_objects([oid]).to_pylist()
    det = [p for p in pts if not p["is_limit"] and p["ra"] is not None]
    row = store.objects.get(oid)
    mean = SkyCoord(
        np.mean([p["ra"] for p in det]) * u.deg, np.mean([p["dec"] for p in det]) * u.deg
    )  # no RA wrap here: a plain mean
    assert SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg).separation(mean).arcsec < 0.01
    assert row["n_points"] == len(pts) and row["n_detections"] == sum(not p["is_limit"] for p in pts)
    assert row["first_mjd"] == min(p["mjd"] for p in pts if not p["is_limit"])
    assert row["last_mjd"] == max(p["mjd"] for p in pts if not p["is_limit"])
    assert row["class"] is None and row["probabilities"] is None  # not classified yet
    expected_b = SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg).galactic.b.deg
    assert row["gal_b"] == pytest.approx(expected_b, abs=1e-6)
    assert row["healpix"] is not None and "ztf_alert" in row["sources"]
    # a BTS object: no position in its points, so the context's, with its host and Galactic latitude
    bts = store.objects.get("ZTF18aacnlxz")
    assert (bts["ra"], bts["dec"]) == pytest.approx((134.954667, 38.109056))
    assert (bts["gal_b"], bts["host_mag"], bts["redshift"]) == pytest.approx((40.8053, 18.698, 0.07247))
    # the CONSTRUCTED objects across RA 0/360: the mean stays at the wrap, not at RA 180
    wrap = store.objects.get("CONSTRUCTED_wrap_hi")
    assert wrap["ra"] > 359.99 and abs(wrap["dec"] - 12.0002) < 1e-3
    assert len(everything) > 1600


def test_a_rebuild_writes_the_same_rows(home, store):
    before = store.objects.get("ZTF21abiuvdk")
    settings = Settings(home=home)
    n = refresh_from_lake(settings.lake_dir, settings.event_store_url, ["ZTF21abiuvdk"])
    after = store.objects.get("ZTF21abiuvdk")
    assert n == 1 and before == after


# ------------------------------------------------------------------------------ cone search
def test_cone_ranges_cover_every_position_within_the_radius():
    # the case astropy-healpix's bare cone search misses (order 13, a 10-arcsec cone grazing a pixel)
    inside = healpix_index(270.45429863423266, -49.922971044911996)[0]
    ranges = cone_ranges(270.45389780618655, -49.923437620299666, 10 / 3600)
    assert any(lo <= inside <= hi for lo, hi in ranges)
    # and random positions within random cones, every size, both poles and RA 0/360 included
    rng = np.random.default_rng(3)
    for radius in (1 / 3600, 10 / 3600, 0.05, 1.0):
        ra = np.r_[rng.uniform(0, 360, 100), 0.0, 359.99999, 10.0, 200.0]
        dec = np.r_[np.degrees(np.arcsin(rng.uniform(-1, 1, 100))), 0.0, 45.0, 90.0, -90.0]
        centre = SkyCoord(ra * u.deg, dec * u.deg)
        point = centre.directional_offset_by(rng.uniform(0, 360, len(ra)) * u.deg, radius * 0.999 * u.deg)
        index = healpix_index(point.ra.deg, point.dec.deg)
        for k in range(len(ra)):
            assert any(lo <= index[k] <= hi for lo, hi in cone_ranges(ra[k], dec[k], radius)), (ra[k], dec[k], radius)


def test_cone_search_matches_brute_force_on_real_and_constructed_positions(store, everything):
    rng = np.random.default_rng(7)
    table = store.objects
    real = [v for k, v in everything.items() if not k.startswith("CONSTRUCTED")]
    centres = [real[i] for i in rng.choice(len(real), 60, replace=False)]
    centres += [(float(rng.uniform(0, 360)), float(np.degrees(np.arcsin(rng.uniform(-1, 1))))) for _ in range(40)]
    centres += [(0.0, 90.0), (123.0, 90.0), (0.0, -90.0), (200.0, -89.9995), (0.0, 12.0), (359.9999, 12.0)]
    centres += [(0.0, 0.0), (359.9998, 0.0001), (0.0001, -0.0002), (45.0, 89.999)]
    checked = nonempty = 0
    for ra, dec in centres:
        for radius in (10 / 3600, 2 / 60, 0.3, 1.0):
            got = table.cone(ra, dec, radius, limit=100_000)
            ids = [o["object_id"] for o in got.objects]
            assert set(ids) == _truth(everything, ra, dec, radius), (ra, dec, radius)
            assert got.total == len(ids)
            dist = [o["distance_arcsec"] for o in got.objects]
            assert dist == sorted(dist) and all(d <= radius * 3600 + 1e-6 for d in dist)
            checked += 1
            nonempty += bool(ids)
    assert checked == 440 and nonempty > 250
    # the poles and the wrap: each cone finds all of its CONSTRUCTED objects
    north = {o["object_id"] for o in table.cone(300.0, 90.0, 10 / 3600).objects}
    assert north == {"CONSTRUCTED_npole_a", "CONSTRUCTED_npole_b", "CONSTRUCTED_npole_c"}
    south = {o["object_id"] for o in table.cone(0.0, -90.0, 10 / 3600).objects}
    assert south == {"CONSTRUCTED_spole_a", "CONSTRUCTED_spole_b"}
    wrap = {o["object_id"] for o in table.cone(0.0, 0.0, 5 / 3600).objects}
    assert wrap == {"CONSTRUCTED_wrap_eq", "CONSTRUCTED_wrap_eq2"}


def test_cone_search_over_http_json(url, everything):
    ra, dec = everything["ZTF21abiuvdk"]
    r = httpx.get(f"{url}/objects", params={"ra": ra, "dec": dec, "radius": 10 / 3600})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["objects"][0]["object_id"] == "ZTF21abiuvdk" and body["objects"][0]["distance_arcsec"] < 1
    assert body["cone"] == {"ra": ra, "dec": dec, "radius": 10 / 3600}
    assert {o["object_id"] for o in body["objects"]} == _truth(everything, ra, dec, 10 / 3600)
    # across RA 0/360 over HTTP too
    r = httpx.get(f"{url}/objects", params={"ra": 359.9999, "dec": 12.0001, "radius": 10 / 3600})
    assert {o["object_id"] for o in r.json()["objects"]} == {"CONSTRUCTED_wrap_lo", "CONSTRUCTED_wrap_hi"}


def test_pages_of_a_cone_add_up_to_the_cone(url, everything):
    # the real object with the most neighbours within a degree is the centre
    ids = [k for k in everything if not k.startswith("CONSTRUCTED")]
    pos = SkyCoord([everything[k][0] for k in ids] * u.deg, [everything[k][1] for k in ids] * u.deg)
    centre = ids[int(np.bincount(pos.search_around_sky(pos, 1.0 * u.deg)[0]).argmax())]
    cone = {"ra": everything[centre][0], "dec": everything[centre][1], "radius": 1.0}
    full = httpx.get(f"{url}/objects", params={**cone, "limit": 1000}).json()
    assert full["next_offset"] is None
    whole = [o["object_id"] for o in full["objects"]]
    assert set(whole) == _truth(everything, cone["ra"], cone["dec"], 1.0) and len(whole) >= 3
    pages, offset = [], 0
    while offset is not None:
        page = httpx.get(f"{url}/objects", params={**cone, "limit": 2, "offset": offset})
        body = page.json()
        assert body["total"] == len(whole)
        pages += [o["object_id"] for o in body["objects"]]
        offset = body["next_offset"]
    assert pages == whole


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"ra": 10, "dec": 10, "radius": -0.1}, "radius=-0.1 is out of range"),
        ({"ra": 361, "dec": 10, "radius": 0.1}, "ra=361 is out of range"),
        ({"ra": -1, "dec": 10, "radius": 0.1}, "ra=-1 is out of range"),
        ({"ra": 10, "dec": 90.5, "radius": 0.1}, "dec=90.5 is out of range"),
        ({"ra": "nan", "dec": 10, "radius": 0.1}, "not a finite number"),
        ({"ra": "ten", "dec": 10, "radius": 0.1}, "not a number"),
        ({"ra": 10, "dec": 10, "radius": 2.5}, "largest cone, 1.0 degrees"),
        ({"ra": 10, "dec": 10}, "radius missing"),
        ({"ra": 10, "dec": 10, "radius": 0.1, "format": "fits"}, "unknown format 'fits'"),
        ({"limit": 0}, "limit=0 is out of range"),
        ({"min_probability": 1.5}, "min_probability=1.5 is out of range"),
        ({"rare": "maybe"}, "rare='maybe'"),
    ],
)
def test_bad_parameters_answer_422_with_a_message(url, params, words):
    r = httpx.get(f"{url}/objects", params=params)
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]


# ------------------------------------------------------------------------------ Simple Cone Search
def _votable(r: httpx.Response):
    assert r.status_code == 200 and r.headers["content-type"].startswith(VOTABLE), r.text[:500]
    return parse_votable(io.BytesIO(r.content))


def test_simple_cone_search_answers_a_valid_votable(url, everything):
    ra, dec = everything["ZTF21abiuvdk"]
    r = httpx.get(f"{url}/objects", params={"RA": ra, "DEC": dec, "SR": 0.5})
    vot = _votable(r)
    info = {i.name: i.value for i in vot.resources[0].infos}
    assert info["QUERY_STATUS"] == "OK"
    table = vot.get_first_table()
    ucds = {f.name: f.ucd for f in table.fields}
    assert ucds["object_id"] == "meta.id;meta.main"
    assert ucds["ra"] == "pos.eq.ra;meta.main" and ucds["dec"] == "pos.eq.dec;meta.main"
    assert {f.name: f.unit for f in table.fields}["ra"] == u.deg
    rows = table.to_table()
    assert set(rows["object_id"]) == _truth(everything, ra, dec, 0.5)
    assert rows["object_id"][0] == "ZTF21abiuvdk"
    assert np.allclose(rows["ra"][0], ra) and np.allclose(rows["dec"][0], dec)
    json_ids = [
        o["object_id"]
        for o in httpx.get(f"{url}/objects", params={"ra": ra, "dec": dec, "radius": 0.5}).json()["objects"]
    ]
    assert list(rows["object_id"]) == json_ids
    # VERB chooses the columns; FORMAT=votable with the JSON spelling too
    few = _votable(httpx.get(f"{url}/objects", params={"RA": ra, "DEC": dec, "SR": 0.5, "VERB": 1})).get_first_table()
    many = _votable(httpx.get(f"{url}/objects", params={"RA": ra, "DEC": dec, "SR": 0.5, "VERB": 3})).get_first_table()
    assert len(few.fields) == 4 < len(table.fields) < len(many.fields)
    same = _votable(httpx.get(f"{url}/objects", params={"ra": ra, "dec": dec, "radius": 0.5, "FORMAT": "votable"}))
    assert list(same.get_first_table().to_table()["object_id"]) == json_ids


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"RA": 400, "DEC": 10, "SR": 0.1}, "RA=400"),
        ({"RA": 10, "DEC": 10, "SR": -1}, "SR=-1"),
        ({"RA": 10, "DEC": 10, "SR": 30}, "largest cone"),
        ({"RA": 10, "SR": 0.1}, "dec missing"),
    ],
)
def test_simple_cone_search_errors_are_votables(url, params, words):
    vot = _votable(httpx.get(f"{url}/objects", params=params))
    infos = {i.name: i for i in vot.resources[0].infos}
    assert infos["QUERY_STATUS"].value == "ERROR"
    assert words in infos["Error"].value
    assert not vot.resources[0].tables


# ------------------------------------------------------------------------------ filters, summary, live path
def test_filters_and_the_live_paths_classes(url, store):
    table = ObjectTable(store.engine)
    base = {"probabilities": {"SN Ia": 0.9, "SLSN-I": 0.1}, "open_set_score": 0.1, "novel": False, "rare": False}
    rows = [
        {**base, "candid": 1, "object_id": "ZTF21abiuvdk", "class": "SN II", "model_version": "1"},
        {**base, "candid": 2, "object_id": "ZTF21abiuvdk", "class": "SN Ia", "model_version": "2"},
        {**base, "candid": 3, "object_id": "ZTF18aacnlxz", "class": "SLSN-I", "rare": True, "open_set_score": 0.8,
         "probabilities": {"SLSN-I": 0.7, "SN Ia": 0.3}, "model_version": "2"},
        {**base, "candid": 4, "object_id": "NEW_OBJECT_NOT_INGESTED", "class": "SN Ia", "model_version": "2"},
    ]  # fmt: skip
    assert table.record_classes(rows) == 3
    summary = httpx.get(f"{url}/objects/ZTF21abiuvdk").json()
    assert summary["class"] == "SN Ia" and summary["model_version"] == "2" and summary["probability"] == 0.9
    assert summary["in_object_table"] and summary["links"]["lightcurve_csv"].endswith("/lightcurve?format=csv")
    assert summary["ra"] is not None and summary["n_points"] > 30  # classes never erase positions
    # an older classification does not overwrite a newer one
    from datetime import datetime

    old = {**rows[0], "candid": 9, "classified_at": datetime(2020, 1, 1)}
    assert table.record_classes([old]) == 0
    assert httpx.get(f"{url}/objects/ZTF21abiuvdk").json()["class"] == "SN Ia"
    # filters, alone and in a cone
    rare = httpx.get(f"{url}/objects", params={"rare": "true"}).json()
    assert [o["object_id"] for o in rare["objects"]] == ["ZTF18aacnlxz"]
    assert {o["object_id"] for o in httpx.get(f"{url}/objects", params={"class": "SN Ia"}).json()["objects"]} == {
        "ZTF21abiuvdk",
        "NEW_OBJECT_NOT_INGESTED",
    }
    assert httpx.get(f"{url}/objects", params={"min_open_set": 0.5}).json()["total"] == 1
    assert httpx.get(f"{url}/objects", params={"min_probability": 0.8}).json()["total"] == 2
    ra, dec = summary["ra"], summary["dec"]
    cone = {"ra": ra, "dec": dec, "radius": 0.01}
    assert httpx.get(f"{url}/objects", params={**cone, "class": "SN II"}).json()["total"] == 0
    assert httpx.get(f"{url}/objects", params={**cone, "class": "SN Ia"}).json()["total"] == 1
    last = summary["last_mjd"]
    assert httpx.get(f"{url}/objects", params={**cone, "last_after": last + 1}).json()["total"] == 0
    assert httpx.get(f"{url}/objects", params={**cone, "last_after": last, "last_before": last}).json()["total"] == 1
    # a listing is newest last detection first; q finds ids by their beginning
    listing = httpx.get(f"{url}/objects", params={"limit": 50}).json()["objects"]
    lasts = [o["last_mjd"] for o in listing if o["last_mjd"] is not None]
    assert lasts == sorted(lasts, reverse=True)
    found = httpx.get(f"{url}/objects", params={"q": "ztf21abiu"}).json()["objects"]
    assert [o["object_id"] for o in found] == ["ZTF21abiuvdk"]


def test_the_summary_of_an_object_not_indexed_yet_comes_from_the_lake(url, home):
    lake = Lake(home / "lake")
    pts = _constructed_points().to_pylist()[:3]
    lake.append(conform(pa.Table.from_pylist([{**p, "object_id": "CONSTRUCTED_late"} for p in pts])))
    body = httpx.get(f"{url}/objects/CONSTRUCTED_late").json()
    assert body["in_object_table"] is False and body["n_detections"] == 3 and body["healpix"] is not None
    r = httpx.get(f"{url}/objects/NOPE_nothing_here")
    assert r.status_code == 404 and "NOPE_nothing_here" in r.json()["detail"]


# ------------------------------------------------------------------------------ light-curve download
def test_the_lightcurve_downloads_agree(url, home):
    oid = "ZTF18abudxnw"  # a v4.02 packet: detections, upper limits and forced photometry
    lake_rows = Lake(home / "lake").read_objects([oid]).num_rows
    j = httpx.get(f"{url}/objects/{oid}/lightcurve").json()
    assert {"object_id", "label", "sources", "points"} <= set(j) and len(j["points"]) == lake_rows
    assert {"mjd", "band", "mag", "magerr", "is_limit"} <= set(j["points"][0])
    assert j["units"]["flux"] == "nJy" and sorted(j["sources"]) == ["ztf_alert", "ztf_fp"]
    r = httpx.get(f"{url}/objects/{oid}/lightcurve", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == lake_rows
    assert {row["kind"] for row in rows} == {"detection", "upper_limit", "forced"}
    assert {row["time_scale"] for row in rows} == {"utc"} and {row["flux_unit"] for row in rows} == {"nJy"}
    assert all(row["source"] == "ztf_fp" for row in rows if row["kind"] == "forced")
    assert all(row["band"] in ("g", "r", "i") for row in rows)
    limits = [row for row in rows if row["kind"] == "upper_limit"]
    assert all(row["candid"] == "" for row in limits)
    assert [float(row["mjd"]) for row in rows] == sorted(float(row["mjd"]) for row in rows)
    assert [float(row["mjd"]) for row in rows] == [p["mjd"] for p in j["points"]]
    vot = _votable(httpx.get(f"{url}/objects/{oid}/lightcurve", params={"format": "votable"}))
    table = vot.get_first_table()
    fields = {f.name: f for f in table.fields}
    assert fields["object_id"].ucd == "meta.id;meta.main" and fields["mjd"].ucd == "time.epoch"
    assert fields["mjd"].unit == u.day and fields["flux"].unit == u.nJy and fields["mag"].unit == u.mag
    assert {i.name: i.value for i in vot.resources[0].infos}["time_scale"] == "utc"
    data = table.to_table()
    assert len(data) == lake_rows and set(data["kind"]) == {"detection", "upper_limit", "forced"}
    assert np.allclose(np.asarray(data["mjd"], dtype=float), [float(row["mjd"]) for row in rows])


def test_lightcurve_bad_format_and_unknown_object(url):
    r = httpx.get(f"{url}/objects/ZTF21abiuvdk/lightcurve", params={"format": "fits"})
    assert r.status_code == 422 and "unknown format 'fits'" in r.json()["detail"]
    assert httpx.get(f"{url}/objects/NOPE/lightcurve", params={"format": "csv"}).status_code == 404


# ------------------------------------------------------------------------------ the command
def test_objects_rebuild_command(home, tmp_path):
    env = {**os.environ, "COSMIC_RAY_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    os.symlink(home / "lake", tmp_path / "lake")
    out = subprocess.run(
        [sys.executable, "-m", "cosmic_ray.ops.cli", "objects", "rebuild"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["objects"] == len(set(Lake(home / "lake").read().column("object_id").to_pylist()))
    table = Store.open(f"sqlite:///{tmp_path / 'events.db'}").objects
    assert table.get("ZTF21abiuvdk")["n_detections"] > 20
