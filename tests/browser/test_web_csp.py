"""The pages and ``/docs`` work under the app's Content-Security-Policy: headless Chromium opens each
one from the served FastAPI app (``cosmic_ray.serve.app.api`` on uvicorn, a real SQLite store, a
real session; no Ray: the model is not needed to render the pages) and no CSP violation is reported,
neither as a ``securitypolicyviolation`` event nor on the console.

The dashboard's feed shows a stored alert (its probability bars set ``style``) and the solar
page's table its colour swatches, so the style paths run; each page's import map must be allowed
by hash or its module never starts (the checks on ``window.*State`` would time out).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cosmic_ray.core.config import Settings
from cosmic_ray.serve.app import api
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


# Recorded in every document before its scripts run.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`);
});
"""


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """``(base_url, session_id)``: the served app over a fresh store holding one classified alert."""
    settings = Settings(home=tmp_path_factory.mktemp("csp"))
    store = Store.open(settings.event_store_url)
    store.accounts.add_user("astronomer", "content security policy test 4711", role="astronomer")
    store.events.record_classifications(
        [
            {
                "candid": 7,
                "object_id": "ZTF21abiuvdk",
                "class": "SN Ia",
                "probabilities": {"SN Ia": 0.8, "SN II": 0.2},
                "open_set_score": 0.2,
                "novel": False,
                "rare": False,
                "model_version": "1",
            }
        ]
    )
    session, _ = store.accounts.create_session("astronomer", timedelta(hours=1))
    with configured(settings, store, logins=50, pages=True), serve_app(api) as url:
        yield url, session
    store.close()


@pytest.fixture(scope="module")
def browser(app_url):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the python package `playwright` is missing: pip install playwright")
    exe = chromium_path()
    url, session = app_url
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        context_ = b.new_context(viewport={"width": 1280, "height": 800})
        context_.add_cookies([{"name": "cr_session", "value": session, "url": url, "httpOnly": True}])
        context_.add_init_script(RECORD_VIOLATIONS)
        yield context_
        context_.close()
        b.close()


# (path, a JS condition that holds once the page's modules ran and drew what uses styles)
PAGES = [
    ("/login", "window.astronautState && window.astronautState.ready"),
    ("/", "window.dashboardState && window.dashboardState.polls >= 1 && document.querySelector('#feed .pbar span')"),
    ("/solar", "window.solarState && window.solarState.ready && document.querySelector('#planet-rows .swatch')"),
    ("/docs", "document.querySelector('.swagger-ui .info .title') && document.querySelectorAll('.opblock').length > 5"),
]


@pytest.mark.parametrize(("path", "ready"), PAGES, ids=[p for p, _ in PAGES])
def test_the_page_works_under_the_csp_with_no_violation(browser, app_url, path, ready):
    url, _ = app_url
    page = browser.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    answer = page.goto(f"{url}{path}", wait_until="load")
    assert answer is not None and answer.status == 200
    assert "default-src 'self'" in (answer.headers.get("content-security-policy") or "")
    page.wait_for_function(
        f"() => ({ready})", timeout=60_000
    )  # a function: a string expression is eval()ed, which the CSP refuses
    page.wait_for_timeout(500)  # violations are reported asynchronously
    violations = page.evaluate("window.__cspViolations")
    csp_console = [m for m in console if "Content Security Policy" in m or "Content-Security-Policy" in m]
    assert violations == [] and csp_console == [], (violations, csp_console)
    if path == "/":
        width = page.eval_on_selector("#feed .pbar span", "e => e.style.width")
        assert width.endswith("%") and float(width[:-1]) > 0  # the style set through the CSSOM applied
    if path == "/solar":
        colour = page.eval_on_selector("#planet-rows .swatch", "e => getComputedStyle(e).backgroundColor")
        assert colour not in ("", "rgba(0, 0, 0, 0)")
    page.close()


def test_a_violation_would_be_seen(browser, app_url):
    """The check above can fail: an inline script and a style attribute on a served page are reported."""
    url, _ = app_url
    page = browser.new_page()
    page.goto(f"{url}/login", wait_until="load")
    page.evaluate(
        """() => {
        const s = document.createElement("script"); s.textContent = "window.__ran = 1"; document.body.append(s);
        const d = document.createElement("div"); d.setAttribute("style", "color: red"); document.body.append(d);
    }"""
    )
    page.wait_for_timeout(500)
    violations = page.evaluate("window.__cspViolations")
    assert page.evaluate("window.__ran") is None
    assert any("script-src" in v for v in violations) and any("style-src" in v for v in violations), violations
    page.close()
