"""The object view's expert labels in headless Chromium (web/js/labels.js): the served app
(``cosmic_ray.serve.app.api`` on uvicorn, a real SQLite store, a real astronomer session; no Ray),
an object's stored answers listed with who and when, a new answer saved from the form and shown,
a refused one (a class on "bogus" cannot happen from the form: an over-long note instead) answered
with the server's message, and no CSP violation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cosmic_ray.core.config import Settings
from cosmic_ray.serve.app import api
from cosmic_ray.serve.labels import Labels
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
document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(e.violatedDirective));
"""


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("labels_web"))
    store = Store.open(settings.event_store_url)
    store.accounts.add_user("vera", "expert labels browser test 4711", role="astronomer")
    Labels(store.engine).add("ZTF21abiuvdk", "class", "SN Ia", "TNS spectrum", "vera")
    session, _ = store.accounts.create_session("vera", timedelta(hours=1))
    with configured(settings, store, logins=50, pages=True), serve_app(api) as url:
        yield url, session, store
    store.close()


def test_the_object_view_lists_and_adds_expert_labels(page_url):
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    url, session, store = page_url
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        ctx.add_cookies([{"name": "cr_session", "value": session, "url": url, "httpOnly": True}])
        ctx.add_init_script(RECORD_VIOLATIONS)
        page = ctx.new_page()
        page.goto(f"{url}/#object=ZTF21abiuvdk")
        page.wait_for_function("() => window.labelsState && window.labelsState.shown === 1", timeout=30000)
        first = page.inner_text("#labels-list")
        assert "class: SN Ia" in first and "vera" in first and "TNS spectrum" in first
        page.select_option("#label-kind", "interesting")
        page.fill("#label-note", "early g-band bump")
        page.click("#label-form button[type=submit]")
        page.wait_for_function("() => window.labelsState.added === 1 && window.labelsState.shown === 2", timeout=30000)
        assert "interesting" in page.inner_text("#labels-list") and "early g-band bump" in page.inner_text(
            "#labels-list"
        )
        page.eval_on_selector("#label-note", "(n) => { n.removeAttribute('maxlength'); n.value = 'x'.repeat(2001); }")
        page.click("#label-form button[type=submit]")
        page.wait_for_function("() => window.labelsState.error !== null", timeout=30000)
        assert "2000" in page.inner_text("#label-message")
        assert page.evaluate("window.__cspViolations") == []
        ctx.close()
        browser.close()
    stored = Labels(store.engine).for_object("ZTF21abiuvdk")
    assert [(a.kind, a.username, a.note) for a in stored] == [
        ("class", "vera", "TNS spectrum"),
        ("interesting", "vera", "early g-band bump"),
    ]
