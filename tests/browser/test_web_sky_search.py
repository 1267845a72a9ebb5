"""The dashboard's search box and sky view in a real browser (issue 19, item 6), without Ray.

Headless Chromium opens the dashboard served by the real app (``cosmic_ray.serve.app.api`` on
uvicorn) over a real SQLite store whose object table holds the real ZTF alert objects (from a real
lake of the shared alert packets), one of them classified rare and two with live alerts. The sky
view draws every positioned object (the rare one highlighted, the live ones ringed); typing
"ra dec radius" lists the cone's objects; typing an object id opens its object view; a bad
search says what to type. No CSP violation is reported on the way.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cosmic_ray.core.config import Settings
from cosmic_ray.ingest.batch import parse_inputs
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.serve.app import api
from cosmic_ray.serve.skyobjects import refresh_from_lake
from cosmic_ray.serve.store import Store

try:
    from web_server import serve_app
except ImportError:  # tests/ made a package
    from tests.web_server import serve_app

try:
    from browser_kit import CHROMIUM_ARGS, chromium_path
except ImportError:  # tests/ made a package
    from tests.browser_kit import CHROMIUM_ARGS, chromium_path

try:
    from api_context import configured
except ImportError:  # tests/ made a package
    from tests.api_context import configured

pytestmark = pytest.mark.timeout(300)

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`);
});
"""
RARE, LIVE = "ZTF21abiuvdk", "ZTF18abudxnw"


def _classification(candid: int, object_id: str, label: str, rare: bool) -> dict:
    return {
        "candid": candid,
        "object_id": object_id,
        "class": label,
        "probabilities": {label: 0.8, "SN Ia": 0.2} if label != "SN Ia" else {"SN Ia": 0.8, "SN II": 0.2},
        "open_set_score": 0.3,
        "novel": False,
        "rare": rare,
        "model_version": "1",
    }


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, shared_data):
    """``(base_url, session_id, store)``: the app over a store with the real alert objects indexed."""
    settings = Settings(home=tmp_path_factory.mktemp("sky-web"))
    z = shared_data / "ztf-alerts"
    files = [
        *sorted((z / "pittgoogle" / "alerts-for-testing").glob("*.avro")),
        *sorted((z / "boom-v4.02").glob("*.avro")),
    ]
    files += sorted((z / "pittgoogle" / "ZTF21abiuvdk_SN2021rhu_stream").glob("*.avro"))
    Lake(settings.lake_dir).append(parse_inputs("ztf", [(str(p), None) for p in files], settings.quarantine_dir).points)
    refresh_from_lake(settings.lake_dir, settings.event_store_url)
    store = Store.open(settings.event_store_url)
    store.accounts.add_user("astronomer", "sky view browser test 4711", role="astronomer")
    classified = [_classification(1, RARE, "SLSN-I", True), _classification(2, LIVE, "SN Ia", False)]
    store.events.record_classifications(classified)
    store.objects.record_classes(classified)
    session, _ = store.accounts.create_session("astronomer", timedelta(hours=1))
    with configured(settings, store, logins=50, pages=True), serve_app(api) as url:
        yield url, session, store
    store.close()


@pytest.fixture(scope="module")
def page(app_url):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the python package `playwright` is missing: pip install playwright")
    exe = chromium_path()
    url, session, _ = app_url
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        ctx.add_cookies([{"name": "cr_session", "value": session, "url": url, "httpOnly": True}])
        ctx.add_init_script(RECORD_VIOLATIONS)
        pg = ctx.new_page()
        pg.goto(f"{url}/", wait_until="load")
        pg.wait_for_function(
            "() => window.skyState && window.skyState.ready && window.skyState.draws >= 1", timeout=60_000
        )
        yield pg
        ctx.close()
        browser.close()


def test_the_sky_view_draws_every_object_with_rare_and_live_ones_marked(page, app_url):
    _, _, store = app_url
    positioned = [o for o in store.objects.listing(limit=1000).objects if o["ra"] is not None]
    state = page.evaluate("() => window.skyState")
    assert state["error"] is None and state["points"] == len(positioned) >= 40
    assert page.locator("#sky-map circle.sky-point").count() == len(positioned)
    rare = page.locator("#sky-map circle.sky-point.rare")
    assert rare.count() == 1 and rare.first.get_attribute("data-object") == RARE
    live = {page.locator("#sky-map circle.live").nth(i).get_attribute("data-object") for i in range(2)}
    assert live == {RARE, LIVE}
    # every dot lies inside the Mollweide ellipse (centre 360,180; radii 350,175)
    inside = page.evaluate(
        """() => [...document.querySelectorAll('#sky-map circle.sky-point')].every((c) => {
          const x = (c.cx.baseVal.value - 360) / 350, y = (c.cy.baseVal.value - 180) / 175;
          return x * x + y * y <= 1.0001; })"""
    )
    assert inside
    assert page.evaluate("() => window.__cspViolations") == []


def test_ra_dec_radius_lists_the_cone(page, app_url):
    _, _, store = app_url
    row = store.objects.get(RARE)
    before = page.evaluate("() => window.skyState.searches")
    page.fill("#sky-query", f"{row['ra']:.5f} {row['dec']:.5f} 0.01")
    page.press("#sky-query", "Enter")
    page.wait_for_function(f"() => window.skyState.searches > {before}", timeout=30_000)
    items = page.locator("#sky-results li")
    assert items.count() >= 1 and RARE in items.first.inner_text()
    assert "★ rare" in items.first.inner_text() and "within 36.0″" in page.inner_text("#sky-message")
    found = page.locator("#sky-map circle.found")
    page.wait_for_function("() => document.querySelectorAll('#sky-map circle.found').length >= 1", timeout=30_000)
    assert found.first.get_attribute("data-object") == RARE
    # radius units: 10" finds the object (it is where the cone is centred), 1" around a point 1' away nothing
    before = page.evaluate("() => window.skyState.searches")
    page.fill("#sky-query", f'{row["ra"]:.5f} {row["dec"] + 1 / 60:.5f} 1"')
    page.press("#sky-query", "Enter")
    page.wait_for_function(f"() => window.skyState.searches > {before}", timeout=30_000)
    assert page.evaluate("() => window.skyState.results") == 0 and "0 object(s) within 1.0″" in page.inner_text(
        "#sky-message"
    )


def test_an_object_id_opens_the_object_view_and_a_bad_search_explains(page):
    before = page.evaluate("() => window.skyState.searches")
    page.fill("#sky-query", LIVE)
    page.press("#sky-query", "Enter")
    page.wait_for_function(f"() => window.skyState.searches > {before}", timeout=30_000)
    page.wait_for_function(f"() => location.hash === '#object={LIVE}'", timeout=30_000)
    page.wait_for_function("() => !document.getElementById('object-view').hidden", timeout=30_000)
    page.click("#object-close")
    before = page.evaluate("() => window.skyState.searches")
    page.fill("#sky-query", "ZTF18abu")  # the beginning of an id lists the matches
    page.press("#sky-query", "Enter")
    page.wait_for_function(f"() => window.skyState.searches > {before}", timeout=30_000)
    assert LIVE in page.inner_text("#sky-results")
    before = page.evaluate("() => window.skyState.searches")
    page.fill("#sky-query", "10 95 0.1")  # dec out of range: the API's message is shown
    page.press("#sky-query", "Enter")
    page.wait_for_function(f"() => window.skyState.searches > {before}", timeout=30_000)
    assert "dec=95" in page.inner_text("#sky-message") and page.locator("#sky-results li").count() == 0
    before = page.evaluate("() => window.skyState.searches")
    page.fill("#sky-query", "no such thing")
    page.press("#sky-query", "Enter")
    page.wait_for_function(f"() => window.skyState.searches > {before}", timeout=30_000)
    assert "ra dec radius" in page.inner_text("#sky-message")
    assert page.evaluate("() => window.__cspViolations") == []
