"""Browser tests of the solar-system page (/solar), checked against astropy.

A real uvicorn server (tests/web_server.py) serves a FastAPI app that includes
``cosmic_ray.serve.web.web_router``; headless Chromium (system package, driven by Playwright)
opens the page. Needs: ``apt-get install chromium`` (or COSMIC_RAY_CHROMIUM=/path),
``pip install playwright`` and ``npm ci`` in web/. None of these is skipped: a missing
one fails with what to do.

Screenshots go to $COSMIC_RAY_SCREENSHOTS when set, else to pytest's tmp_path.
"""

from __future__ import annotations

import http.client
import logging
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cosmic_ray.serve.web import default_web_dir, mount_web, vendor_dir, web_router

try:
    from web_server import serve_app
except ImportError:  # tests/ made a package
    from tests.web_server import serve_app

try:
    from browser_kit import CHROMIUM_ARGS, chromium_path
except ImportError:  # tests/ made a package
    from tests.browser_kit import CHROMIUM_ARGS, chromium_path

log = logging.getLogger(__name__)

VIEWPORT = {"width": 1280, "height": 800}
PLANETS = ["mercury", "venus", "earth", "mars", "jupiter", "saturn", "uranus", "neptune"]
INSTANTS = [
    "2000-01-01T12:00:00Z",
    "2024-03-20T03:06:00Z",
    "1990-07-15T00:00:00Z",
    "2040-11-27T18:30:00Z",
]
OBLIQUITY_J2000_DEG = 23.4392911

# Tolerances (what the page must meet).
JD_TOL_DAYS = 1e-8  # ~1 ms
GMST_TOL_S = 1.0  # seconds of sidereal time
PLANET_TOL_DEG = 0.5
SUBSOLAR_TOL_DEG = 0.1
EARTH_RENDER_TOL_DEG = 0.05

# Largest errors seen, printed at the end of the session (-s or -rA shows them).
MEASURED: dict[str, float] = {}


def _record(key: str, value: float) -> None:
    MEASURED[key] = max(MEASURED.get(key, 0.0), value)


@pytest.fixture(scope="module", autouse=True)
def _report_measured():
    yield
    if MEASURED:
        lines = ", ".join(f"{k}={v:.3g}" for k, v in sorted(MEASURED.items()))
        print(f"\n[test_web_solar] max errors: {lines}")


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def web_dir() -> Path:
    d = default_web_dir()
    three = vendor_dir(d) / "three" / "build" / "three.module.js"
    if not three.is_file():
        pytest.fail(f"{three} is missing: run `npm ci` in {d} before the browser tests")
    return d


@pytest.fixture(scope="module")
def web_store(tmp_path_factory):
    """An event store with one user: the pages need a login session."""
    from cosmic_ray.serve.store import Store

    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('web_store') / 'events.db'}")
    store.accounts.add_user("solar-viewer", "solar viewer password", role="viewer")
    yield store
    store.close()


@pytest.fixture(scope="module")
def session_id(web_store) -> str:
    from datetime import timedelta

    return web_store.accounts.create_session("solar-viewer", timedelta(hours=1))[0]


@pytest.fixture(scope="module")
def base_url(web_dir: Path, web_store):
    app = FastAPI()
    app.include_router(web_router(web_dir, store=web_store.accounts))
    with serve_app(app) as url:
        yield url


@pytest.fixture(scope="module")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the python package `playwright` is missing: pip install playwright")
    exe = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def browser(chromium, base_url, session_id):
    """A browser context logged in (the pages redirect to /login without a session)."""
    context = chromium.new_context(viewport=VIEWPORT)
    context.add_cookies(
        [{"name": "cr_session", "value": session_id, "url": base_url, "httpOnly": True, "sameSite": "Strict"}]
    )
    yield context
    context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    d = Path(os.environ.get("COSMIC_RAY_SCREENSHOTS") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


class PageProblems:
    """Console errors, uncaught exceptions and failed requests seen by a page."""

    def __init__(self, page):
        self.items: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.items.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.items.append(f"exception: {e}"))
        page.on("requestfailed", lambda r: self.items.append(f"request failed: {r.url} {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and self.items.append(f"HTTP {r.status}: {r.url}"))


def open_solar(browser, base_url: str, query: str):
    page = browser.new_page()
    problems = PageProblems(page)
    page.goto(f"{base_url}/solar{query}", wait_until="load")
    page.wait_for_function(
        "window.solarState && window.solarState.ready && window.solarState.frames >= 1",
        timeout=60_000,
    )
    return page, problems


# ------------------------------------------------------------------ astropy truth


def _astropy_truth(iso: str) -> dict:
    from astropy.utils import iers

    iers.conf.auto_download = False  # no internet here; UT1 is taken = UTC below
    import astropy.units as u
    from astropy.coordinates import PrecessedGeocentric, get_body, get_body_barycentric
    from astropy.time import Time

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ERFA's "dubious year" after the leap-second table
        t = Time(iso.removesuffix("Z"), scale="utc")
        t.delta_ut1_utc = 0.0
        gmst = t.sidereal_time("mean", "greenwich", model="IAU1982")
        sun_bary = get_body_barycentric("sun", t, ephemeris="builtin").xyz.to_value(u.au)
        planets = {}
        for name in PLANETS:
            v = get_body_barycentric(name, t, ephemeris="builtin").xyz.to_value(u.au) - sun_bary
            planets[name] = _equatorial_to_ecliptic(v)
        # Subsolar point in the mean equator and equinox of date, the frame GMST belongs to.
        sun = get_body("sun", t, ephemeris="builtin").transform_to(PrecessedGeocentric(equinox=t, obstime=t))
        sub_lon = (sun.ra - gmst).wrap_at(180 * u.deg).deg
        sub_lat = sun.dec.deg
    return {
        "jd": float(t.jd),
        "gmst_deg": float(gmst.deg),
        "planets": planets,
        "subsolar": (float(sub_lon), float(sub_lat)),
    }


def _equatorial_to_ecliptic(v: np.ndarray) -> np.ndarray:
    """ICRS-aligned equatorial -> ecliptic J2000 (rotation by the J2000 obliquity about x)."""
    e = math.radians(OBLIQUITY_J2000_DEG)
    x, y, z = v
    return np.array([x, math.cos(e) * y + math.sin(e) * z, -math.sin(e) * y + math.cos(e) * z])


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


def _lonlat(v: np.ndarray) -> tuple[float, float]:
    return (math.degrees(math.atan2(v[1], v[0])) % 360.0, math.degrees(math.asin(v[2] / np.linalg.norm(v))))


def _wrap180(x: float) -> float:
    return (x + 180.0) % 360.0 - 180.0


def _hms_to_deg(text: str) -> float:
    h, m, s = text.split(":")
    return (int(h) + int(m) / 60 + float(s) / 3600) * 15.0


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("iso", INSTANTS)
def test_solar_page_matches_astropy(browser, base_url, shots, iso):
    page, problems = open_solar(browser, base_url, f"?t={iso}")
    try:
        state = page.evaluate("window.solarState")
        truth = _astropy_truth(iso)

        assert state["webgl"], "WebGL did not start in Chromium"
        assert state["playing"] is False, "?t= must start paused"

        # Julian Date of the UTC instant, and what the page shows.
        jd_err = abs(state["jd"] - truth["jd"])
        _record("jd_days", jd_err)
        assert jd_err < JD_TOL_DAYS, (state["jd"], truth["jd"])
        assert abs(float(page.inner_text("#jd")) - truth["jd"]) < 1e-6

        # GMST, IAU 1982 with UT1 = UTC: in seconds of time (360 deg = 86400 s).
        gmst_err_s = abs(_wrap180(state["gmstDeg"] - truth["gmst_deg"])) * 240.0
        _record("gmst_s", gmst_err_s)
        assert gmst_err_s < GMST_TOL_S, (state["gmstDeg"], truth["gmst_deg"])
        shown_s = abs(_wrap180(_hms_to_deg(page.inner_text("#gmst")) - truth["gmst_deg"])) * 240.0
        assert shown_s < GMST_TOL_S, page.inner_text("#gmst")
        assert abs(_wrap180(float(page.inner_text("#gmst-deg")) - truth["gmst_deg"])) * 240 < GMST_TOL_S

        # Heliocentric positions, ecliptic J2000: angle between vectors, lon/lat, distance.
        for name in PLANETS:
            p = state["planets"][name]
            mine = np.array([p["x"], p["y"], p["z"]])
            ref = truth["planets"][name]
            ang = _angle_deg(mine, ref)
            (lon_m, lat_m), (lon_r, lat_r) = _lonlat(mine), _lonlat(ref)
            dlon = abs(_wrap180(lon_m - lon_r))
            dlat = abs(lat_m - lat_r)
            dr = abs(np.linalg.norm(mine) / np.linalg.norm(ref) - 1.0)
            _record("planet_angle_deg", ang)
            _record(f"{name}_angle_deg", ang)
            _record("planet_lon_deg", dlon)
            _record("planet_lat_deg", dlat)
            _record("planet_r_rel", dr)
            assert ang < PLANET_TOL_DEG, f"{name} at {iso}: {ang:.3f} deg from astropy"
            assert dlon < PLANET_TOL_DEG and dlat < PLANET_TOL_DEG, (name, dlon, dlat)
            assert dr < 0.01, (name, dr)

        # Day/night: the Sun is overhead where astropy says, and the rendered globe agrees.
        lon_t, lat_t = truth["subsolar"]
        sub = state["subsolar"]
        sub_err = max(abs(_wrap180(sub["lonDeg"] - lon_t)) * math.cos(math.radians(lat_t)), abs(sub["latDeg"] - lat_t))
        _record("subsolar_deg", sub_err)
        assert sub_err < SUBSOLAR_TOL_DEG, (sub, truth["subsolar"])
        _record("earth_render_deg", state["earthCheckDeg"])
        assert state["earthCheckDeg"] < EARTH_RENDER_TOL_DEG

        # It renders: the canvas is not blank and the Earth inset has a lit and a dark side.
        stem = "solar-" + iso.replace(":", "").replace("-", "")
        canvas_png = shots / f"{stem}-canvas.png"
        page.locator("#scene canvas").screenshot(path=str(canvas_png))
        page.screenshot(path=str(shots / f"{stem}-page.png"))
        pixels = _read_png(canvas_png)
        assert pixels.var() > 0, "the canvas is blank"
        assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 500
        box = page.locator(".earth-frame").bounding_box()
        inset = pixels[
            int(box["y"]) + 20 : int(box["y"] + box["height"]) - 4, int(box["x"]) + 4 : int(box["x"] + box["width"]) - 4
        ]
        lum = inset[..., :3].mean(axis=-1)
        assert (lum > 60).mean() > 0.02, "no sunlit Earth in the close-up"
        assert lum.var() > 100, "the Earth close-up is flat"

        assert not problems.items, problems.items
    finally:
        page.close()


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def test_time_controls_run_the_clock(browser, base_url, shots):
    page, problems = open_solar(browser, base_url, "?t=2024-03-20T03:06:00Z")
    try:
        jd0 = page.evaluate("window.solarState.jd")
        # Pick an instant with the datetime input (read as UTC).
        page.fill("#when", "2040-11-27T18:30:00")
        page.wait_for_function("window.solarState.iso.startsWith('2040-11-27T18:30:00')")
        assert abs(page.evaluate("window.solarState.jd") - 2466486.2708333335) < 1e-8
        # Speed: 1 day per second, then play for a while.
        page.locator("#speed").fill("6")
        assert "1 day/s" in page.inner_text("#speed-label")
        page.click("#play")
        page.wait_for_timeout(1500)
        page.click("#play")  # pause again
        state = page.evaluate("window.solarState")
        assert state["playing"] is False
        advanced = state["jd"] - 2466486.2708333335
        assert 0.3 < advanced < 5.0, f"1 day/s for ~1.5 s moved {advanced} days"
        # Reverse runs time backwards.
        page.click("#reverse")
        page.click("#play")
        page.wait_for_timeout(800)
        page.click("#play")
        assert page.evaluate("window.solarState.jd") < state["jd"]
        # "Now" jumps to the clock.
        page.click("#now")
        now_jd = page.evaluate("window.solarState.jd")
        assert abs(now_jd - (2440587.5 + page.evaluate("Date.now()") / 86400000)) < 0.01
        assert now_jd != jd0
        page.select_option("#scale", "linear")
        page.click("#view-earth")
        page.wait_for_function("window.solarState.frames > 3")
        page.screenshot(path=str(shots / "solar-controls-page.png"))
        assert not problems.items, problems.items
    finally:
        page.close()


def test_bad_t_parameter_falls_back_to_now(browser, base_url):
    page, problems = open_solar(browser, base_url, "?t=not-a-date")
    try:
        assert page.is_visible("#error")
        assert "ISO 8601" in page.inner_text("#error")
        assert page.evaluate("window.solarState.playing") is True
        assert not problems.items, problems.items
    finally:
        page.close()


# ------------------------------------------------------------------ serving


def _raw_get(base_url: str, raw_path: str) -> tuple[int, bytes]:
    """GET with the path sent as is (http.client does not normalise dot segments)."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("GET", raw_path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "raw_path",
    [
        "/static/js/../../pyproject.toml",
        "/static/js/../../../pyproject.toml",
        "/static/js/%2e%2e/%2e%2e/pyproject.toml",
        "/static/js/..%2f..%2fpyproject.toml",
        "/static/js/..%2F..%2F..%2Fpyproject.toml",
        "/vendor/three/../../package.json",
        "/vendor/three/..%2f..%2f..%2fpyproject.toml",
        "/vendor/three/%2e%2e/%2e%2e/%2e%2e/cosmic_ray/serve/web.py",
        "/static/js/%252e%252e/%252e%252e/pyproject.toml",
        "/static/js//etc/passwd",
        "/vendor/three//etc/passwd",
        "/static/node_modules/three/package.json",
    ],
)
def test_no_path_traversal(base_url, raw_path):
    status, body = _raw_get(base_url, raw_path)
    assert status in (400, 404), (raw_path, status)
    assert b"[project]" not in body and b"root:" not in body and b"def web_router" not in body


def test_assets_are_served_with_module_types(base_url):
    for path, kind in [
        ("/login", "text/html"),  # /solar needs a session (tested above)
        ("/static/js/solar.js", "javascript"),
        ("/static/js/astro.js", "javascript"),
        ("/static/css/solar.css", "text/css"),
        ("/vendor/three/build/three.module.js", "javascript"),
        ("/vendor/three/examples/jsm/controls/OrbitControls.js", "javascript"),
        ("/vendor/topojson-client/src/index.js", "javascript"),
        ("/vendor/world-atlas/land-110m.json", "json"),
    ]:
        host, port = base_url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        assert resp.status == 200, path
        assert kind in resp.getheader("content-type", ""), (path, resp.getheader("content-type"))


def test_mount_web_in_a_plain_app(web_dir, web_store, session_id):
    app = FastAPI()

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    mount_web(app, web_dir, store=web_store.accounts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = TestClient(app, follow_redirects=False)
    assert client.get("/api/health").json() == {"status": "ok"}
    assert client.get("/solar").status_code == 303  # no session: to the login page
    assert client.get("/solar").headers["location"].startswith("login?next=")
    client.cookies.set("cr_session", session_id)
    assert client.get("/solar").status_code == 200
    assert client.get("/static/js/astro.js").status_code == 200
    assert client.get("/vendor/three/build/three.module.js").status_code == 200
    assert client.get("/static/js/nope.js").status_code == 404
    assert "/solar" not in client.get("/openapi.json").json()["paths"]


def test_web_router_needs_an_existing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="web folder"):
        web_router(tmp_path / "missing")
