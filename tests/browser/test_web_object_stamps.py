"""The dashboard's object view shows the chosen alert's three stamps, its cross-matches and links out
(issue 19, items 4 and 5), in headless Chromium under the app's Content-Security-Policy.

The served FastAPI app (``cosmic_ray.serve.app.api`` on uvicorn, a real SQLite store, a real
session; no Ray: no prediction is needed to draw the stamps) reads a real lake made from the real
ZTF packets of the shared data, stamps included, as ZTF ingest writes it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cosmic_ray.core.config import Settings
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.serve.app import api
from cosmic_ray.serve.store import Store
from cosmic_ray.sources import ztf
from cosmic_ray.sources.base import RawInput

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
document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""
OBJECT = "ZTF21abiuvdk"  # SN 2021rhu: 34 alerts with stamps in the shared data


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, shared_data):
    settings = Settings(home=tmp_path_factory.mktemp("stamps"), shared_data=shared_data)
    packets = sorted((shared_data / "ztf-alerts" / "pittgoogle").rglob(f"{OBJECT}*.avro"))
    parsed = ztf.parse_many([RawInput(str(p), p.read_bytes()) for p in packets])
    lake = Lake(settings.lake_dir)
    lake.append(parsed.table)
    lake.append_alerts(parsed.alert_meta)
    store = Store.open(settings.event_store_url)
    store.accounts.add_user("stamp-viewer", "object view stamps test 2718", role="viewer")
    session, _ = store.accounts.create_session("stamp-viewer", timedelta(hours=1))
    with configured(settings, store, logins=50, pages=True), serve_app(api) as url:
        yield url, session
    store.close()


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    url, session = app_url
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        ctx.add_cookies([{"name": "cr_session", "value": session, "url": url, "httpOnly": True}])
        ctx.add_init_script(RECORD_VIOLATIONS)
        yield ctx.new_page()
        browser.close()


def test_the_object_view_shows_three_stamps_crossmatches_and_links(page, app_url):
    url, _ = app_url
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.goto(f"{url}/#object={OBJECT}", wait_until="load")
    try:
        page.wait_for_function("() => window.objectViewState && window.objectViewState.stamps === 3", timeout=20_000)
    except Exception:
        raise AssertionError(f"{page.evaluate('() => JSON.stringify(window.objectViewState)')} {console}") from None
    page.wait_for_function(
        "() => window.objectViewState && window.objectViewState.stamps === 3 && window.objectViewState.links > 0",
        timeout=60_000,
    )
    images = page.eval_on_selector_all(
        "#stamps img", "(imgs) => imgs.map((i) => [i.dataset.kind, i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert [kind for kind, *_ in images] == ["science", "template", "difference"]
    assert all(done and w > 0 and h > 0 for _, done, w, h in images), images
    latest = page.evaluate("() => window.objectViewState.candid")
    assert page.input_value("#stamp-alert") == latest and len(latest) == 19  # every digit of the candid
    # choosing an older alert loads that alert's three stamps
    older = page.eval_on_selector("#stamp-alert", "(s) => s.options[s.options.length - 1].value")
    page.select_option("#stamp-alert", older)
    page.wait_for_function(
        f"() => window.objectViewState.candid === '{older}' && window.objectViewState.stamps === 3", timeout=30_000
    )
    srcs = page.eval_on_selector_all("#stamps img", "(imgs) => imgs.map((i) => i.getAttribute('src'))")
    assert all(f"candid={older}" in s for s in srcs), srcs
    rows = page.inner_text("#crossmatches")
    assert "PS1" in rows and "Gaia" in rows
    services = page.eval_on_selector_all("#links-out a", "(links) => links.map((a) => a.dataset.service)")
    assert {"ALeRCE", "Fink", "SIMBAD", "Legacy Survey"} <= set(services)
    assert page.get_attribute("#links-out a[data-service='ALeRCE']", "href") == f"https://alerce.online/object/{OBJECT}"
    assert page.evaluate("() => window.__cspViolations") == []
