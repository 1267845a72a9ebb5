"""The web app in a real browser against the deployed Serve app: login, dashboard, object view.

Headless Chromium (Debian's, driven by Playwright) opens the pages the Ray Serve ingress serves
(the ``served`` fixture: real model, real event store). Users are created in the store, as the
CLI does. Screenshots of each page go to docs/screenshots/ (they are in the README).

Waits take functions (``"() => ..."``): Playwright runs a bare expression through ``eval``, which
the pages' Content-Security-Policy refuses (no ``'unsafe-eval'``).
"""

from __future__ import annotations

import io
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fastavro
import httpx
import numpy as np
import pytest

try:
    from browser_kit import CHROMIUM_ARGS, chromium_path
except ImportError:  # tests/ made a package
    from tests.browser_kit import CHROMIUM_ARGS, chromium_path

REPO = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("COSMIC_RAY_SCREENSHOTS") or REPO / "docs" / "screenshots")
VIEWPORT = {"width": 1280, "height": 800}
MAX_PNG_BYTES = 400_000
ASTRONOMER = ("web-ada", "astronomer web password 1")
VIEWER = ("web-vic", "viewer web password 1")


@pytest.fixture(scope="module")
def web_users(event_store):
    for (name, password), role in ((ASTRONOMER, "astronomer"), (VIEWER, "viewer")):
        if event_store.accounts.get_user(name) is None:
            event_store.accounts.add_user(name, password, role=role)
    return {"astronomer": ASTRONOMER, "viewer": VIEWER}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


def session_context(browser, served, event_store, username):
    """A browser context already logged in as ``username`` (a session made by the store, as /auth/login does)."""
    from datetime import timedelta

    session_id, _ = event_store.accounts.create_session(username, timedelta(hours=1))
    context = browser.new_context(viewport=VIEWPORT)
    context.add_cookies(
        [{"name": "cr_session", "value": session_id, "url": served, "httpOnly": True, "sameSite": "Strict"}]
    )
    return context


def open_dashboard(context, served):
    page = context.new_page()
    page.goto(f"{served}/", wait_until="load")
    page.wait_for_function(
        "() => window.dashboardState && window.dashboardState.ready && window.dashboardState.polls >= 1", timeout=60_000
    )
    return page


def check_and_save(page, name: str) -> Path:
    """Screenshot -> docs/screenshots/<name>.png; asserts it is not blank (variance, many colours) and small."""
    from PIL import Image

    png = page.screenshot(type="png")
    image = Image.open(io.BytesIO(png)).convert("RGB")
    pixels = np.asarray(image, dtype=np.float64)
    colours = len(np.unique(pixels.reshape(-1, 3).astype(np.uint8).view([("r", "u1"), ("g", "u1"), ("b", "u1")])))
    assert pixels.std() > 12, f"{name}: the screenshot looks blank (std {pixels.std():.1f})"
    assert colours > 500, f"{name}: only {colours} colours"
    if len(png) > MAX_PNG_BYTES:  # keep the README light: 256-colour palette, still a faithful picture
        out = io.BytesIO()
        image.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
            out, "PNG", optimize=True
        )
        png = out.getvalue()
    assert len(png) <= MAX_PNG_BYTES, f"{name}: {len(png)} bytes"
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    path.write_bytes(png)
    return path


def fresh_alerts(shared_data, event_store, n: int = 2) -> list[dict]:
    """Real ZTF alerts (cutouts dropped) whose candids the store has not seen yet."""
    out = []
    for path in sorted((shared_data / "ztf-alerts").rglob("*.avro")):
        with open(path, "rb") as handle:
            records = [{k: v for k, v in r.items() if not k.startswith("cutout")} for r in fastavro.reader(handle)]
        unseen = event_store.events.known_candids(r["candid"] for r in records)
        out.extend(r for r in records if r["candid"] not in unseen)
        if len(out) >= n:
            return out[:n]
    pytest.fail("every shared alert is already in the store: no fresh alert to send")


# ------------------------------------------------------------------ no page without a session


def test_pages_need_a_session(served, event_store, web_users):
    with httpx.Client(base_url=served, timeout=30, follow_redirects=False) as client:
        for path in ("/", "/solar", "/solar?t=2024-03-20T03:06:00Z"):
            answer = client.get(path)
            assert answer.status_code == 303, (path, answer.status_code)
            assert answer.headers["location"].startswith("login?next="), answer.headers["location"]
        forged = client.get("/", cookies={"cr_session": "not-a-session"})
        assert forged.status_code == 303
        assert client.get("/web/apod").status_code == 401
        assert client.get("/web/config").status_code == 401
        login = client.get("/login")
        assert login.status_code == 200 and "cr_session" not in login.headers.get("set-cookie", "")
        assert client.get("/static/js/login.js").status_code == 200  # assets stay public
        assert client.get("/vendor/three/build/three.module.js").status_code == 200
        ok = client.post("/auth/login", json={"username": web_users["viewer"][0], "password": web_users["viewer"][1]})
        assert ok.status_code == 200
        assert client.get("/").status_code == 200 and "Live feed" in client.get("/").text
        assert client.get("/solar").status_code == 200
        client.post("/auth/logout")
        client.cookies.clear()
        assert client.get("/").status_code == 303


# ------------------------------------------------------------------ the login page


def test_login_astronaut_watches_covers_and_is_sad_on_failure(browser, served, web_users):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{served}/login", wait_until="load")
    page.wait_for_function(
        "() => window.astronautState && window.astronautState.ready && window.astronautState.frames > 3", timeout=60_000
    )
    assert page.evaluate("window.astronautState.webgl")

    page.evaluate("document.activeElement.blur()")
    page.wait_for_function("() => window.astronautState.mode === 'idle'")
    assert page.get_attribute("body", "data-state") == "idle"

    page.click("#username")
    page.keyboard.type("w", delay=20)
    page.wait_for_function(
        "() => window.astronautState.mode === 'watching' && Math.abs(window.astronautState.headYaw - window.astronautState.targetYaw) < 0.02",
        timeout=10_000,
    )
    yaw_short = page.evaluate("window.astronautState.headYaw")
    caret_short = page.evaluate("window.astronautState.caret.x")
    page.keyboard.type("eb-ada-is-typing-a-long-name", delay=15)
    page.wait_for_function(
        f"() => Math.abs(window.astronautState.headYaw - {yaw_short}) > 0.02 && Math.abs(window.astronautState.headYaw - window.astronautState.targetYaw) < 0.02",
        timeout=10_000,
    )
    assert page.evaluate("window.astronautState.caret.x") > caret_short + 50  # the caret moved right, the head followed
    assert page.get_attribute("body", "data-state") == "watching"
    check_and_save(page, "login")

    page.fill("#username", web_users["astronomer"][0])
    page.click("#password")
    page.wait_for_function(
        "() => window.astronautState.mode === 'covering' && window.astronautState.handsOnVisor", timeout=10_000
    )
    assert page.get_attribute("body", "data-state") == "covering"

    page.keyboard.type("not the password")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => window.astronautState.mode === 'sad' && window.astronautState.failures === 1", timeout=30_000
    )
    page.wait_for_function("() => Math.abs(window.astronautState.shake) > 0.05", timeout=5_000)  # it shakes
    assert page.evaluate("window.astronautState.lastStatus") == 401
    assert "invalid username or password" in page.inner_text("#message").lower()
    assert page.url.endswith("/login")
    assert not [c for c in context.cookies() if c["name"] == "cr_session"]
    assert not errors, errors
    context.close()


def test_login_success_reaches_the_dashboard_with_a_just_sent_alert(
    browser, served, web_users, shared_data, event_store, trained
):
    from cosmic_ray.serve import live

    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(f"{served}/login", wait_until="load")
    page.wait_for_function("() => window.astronautState && window.astronautState.ready")
    page.fill("#username", web_users["astronomer"][0])
    page.fill("#password", web_users["astronomer"][1])
    page.click("#submit")
    page.wait_for_url(f"{served}/", timeout=30_000)
    cookie = [c for c in context.cookies() if c["name"] == "cr_session"]
    assert cookie and cookie[0]["httpOnly"] and cookie[0]["sameSite"] == "Strict"
    page.wait_for_function(
        "() => window.dashboardState && window.dashboardState.ready && window.dashboardState.polls >= 1", timeout=60_000
    )
    assert page.inner_text("#me") == web_users["astronomer"][0]

    records = fresh_alerts(shared_data, event_store)
    # Playwright's sync API runs an event loop in this thread; a Serve handle's sync calls need another thread
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(lambda: live.classify_and_store(records, live.model_handle(), event_store.events)).result(
            timeout=120
        )
    assert result.stored >= 1
    stored = event_store.events.recent_alerts(limit=5)
    candid = next(a["candid"] for a in stored if a["candid"] in {r["candid"] for r in records})
    alert = next(a for a in stored if a["candid"] == candid)
    # candids exceed 2**53: JavaScript numbers cannot hold them exactly, so match object + time
    row = page.locator(f'#feed tr[data-object="{alert["object_id"]}"][data-classified="{alert["classified_at"]}"]')
    row.first.wait_for(timeout=30_000)  # the page polls /alerts every few seconds
    row = row.first
    text = row.inner_text()
    assert alert["object_id"] in text and alert["class"] in text

    # the object view: light curve, probabilities, nearest known objects, find similar
    row.locator("a").first.click()
    page.wait_for_function(
        f"() => window.dashboardState.objectId === {alert['object_id']!r} && window.dashboardState.objectReady",
        timeout=60_000,
    )
    assert page.locator("#lightcurve svg circle.det").count() >= 2
    assert page.locator("#probabilities .bar").count() >= 2
    assert page.locator("#probabilities .bar.top").count() == 1
    assert page.locator("#neighbours li a").count() >= 1
    page.click("#find-similar")
    page.locator("#similar li a").first.wait_for(timeout=120_000)
    check_and_save(page, "object")
    context.close()


# ------------------------------------------------------------------ class registration by role


def _lake_objects(settings, n: int) -> list[str]:
    import pyarrow.compute as pc

    from cosmic_ray.ingest.lake import Lake
    from cosmic_ray.learn.features import MODEL_SOURCES

    table = Lake(settings.lake_dir).read(sources=list(MODEL_SOURCES))
    table = table.filter(pc.invert(table.column("is_limit")))
    ids, counts = np.unique(np.asarray(table.column("object_id").to_pylist()), return_counts=True)
    return [str(i) for i in ids[counts >= 5][:n]]


def test_class_registration_from_the_form_by_role(browser, served, web_users, event_store, settings):
    objects = _lake_objects(settings, 3)
    assert len(objects) == 3
    name = f"Web class {uuid.uuid4().hex[:6]}"

    viewer = session_context(browser, served, event_store, web_users["viewer"][0])
    page = open_dashboard(viewer, served)
    page.fill("#class-name", name)
    page.fill("#class-objects", "\n".join(objects))
    page.click("#register")
    page.wait_for_selector('#register-message[data-status="403"]', timeout=30_000)
    assert "astronomer" in page.inner_text("#register-message")
    assert name not in {c["name"] for c in httpx.get(f"{served}/classes", timeout=30).json()}
    viewer.close()

    astronomer = session_context(browser, served, event_store, web_users["astronomer"][0])
    page = open_dashboard(astronomer, served)
    page.fill("#class-name", name)
    page.fill("#class-objects", ", ".join(objects))
    page.click("#register")
    page.wait_for_selector('#register-message[data-status="201"]', timeout=60_000)
    token = event_store.accounts.create_token(web_users["astronomer"][0], "browser-test").token
    signed_in = {"Authorization": f"Bearer {token}"}  # created_by is shown to signed-in readers only
    registered = {c["name"]: c for c in httpx.get(f"{served}/classes", headers=signed_in, timeout=30).json()}
    assert registered[name]["created_by"] == web_users["astronomer"][0]
    assert sorted(registered[name]["support_objects"]) == sorted(objects)
    page.wait_for_selector(f'#class-filter option[value="{name}"]', state="attached", timeout=10_000)
    astronomer.close()
    _remove_class(served, event_store, name)


def _remove_class(served: str, event_store, name: str, timeout: float = 90) -> None:
    """Leave the session's app as it was: the class gone from the store and from every replica."""
    event_store.events.remove_class(name)
    deadline = time.monotonic() + timeout
    while any(name in httpx.get(f"{served}/model", timeout=30).json()["classes"] for _ in range(8)):  # any replica
        assert time.monotonic() < deadline, f"{name} still served after its removal"
        time.sleep(0.5)


# ------------------------------------------------------------------ dashboard panels, solar, screenshots


def test_dashboard_panels_apod_offline_and_screenshots(browser, served, web_users, event_store, trained):
    context = session_context(browser, served, event_store, web_users["viewer"][0])
    page = open_dashboard(context, served)
    page.wait_for_selector(
        '#apod[data-state="unavailable"]', timeout=30_000
    )  # offline here: no picture, never a fake one
    assert page.locator("#apod img").count() == 0
    assert "unavailable" in page.inner_text("#apod").lower()
    page.wait_for_function(
        f"() => document.getElementById('model-version').textContent === 'v{trained.version}'", timeout=30_000
    )
    page.wait_for_selector("#model-metrics .metric", timeout=60_000)
    assert "balanced accuracy" in page.inner_text("#model-metrics")
    assert page.get_attribute("#ray-link", "href") == "http://127.0.0.1:8265"
    assert page.get_attribute("#mlflow-link", "href").startswith("http")
    page.wait_for_function("() => window.dashboardState.solarFrames > 5", timeout=30_000)
    page.wait_for_timeout(500)
    check_and_save(page, "dashboard")

    # the follow-up list ranks live objects by the chosen class's probability (GET /candidates)
    # (other tests' alerts are in the same store: the newest of the most probable comes first)
    top = {
        "candid": 9_100_000_000_001,
        "object_id": "ZTFfollowA",
        "class": "SN Ia",
        "probabilities": {"SN Ia": 0.0, "SLSN-I": 1.0},
        "open_set_score": 0.3,
        "novel": False,
        "rare": False,
        "model_version": trained.version,
    }
    event_store.events.record_classifications([top])
    assert event_store.events.known_candids([top["candid"]]) == {top["candid"]}
    expected = [a["object_id"] for a in event_store.events.top_candidates("SLSN-I", limit=6)]
    assert expected[0] == "ZTFfollowA"
    assert page.locator("#followup-class option[value='SLSN-I']").count() == 1
    page.select_option("#followup-class", "SLSN-I")
    page.wait_for_function(
        "() => document.querySelector('#followup-list li[data-object]')?.dataset.object === 'ZTFfollowA'",
        timeout=30_000,
    )
    listed = page.locator("#followup-list li[data-object]").evaluate_all("items => items.map(li => li.dataset.object)")
    assert listed == expected, (listed, expected)  # the page shows the store's ranking, in order
    assert page.inner_text("#followup-list li:first-child").rstrip().endswith("100%")

    # rare only: every row listed is flagged rare
    page.check("#rare-only")
    page.wait_for_function("() => window.dashboardState.polls >= 1")
    page.wait_for_timeout(300)
    assert page.locator("#feed tr").count() == page.locator("#feed tr.rare").count()

    page.close()  # one WebGL page at a time on the software renderer
    solar = context.new_page()
    solar.set_viewport_size(VIEWPORT)
    problems: list[str] = []
    solar.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    solar.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    solar.on("response", lambda r: problems.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
    solar.goto(f"{served}/solar?t=2024-03-20T03:06:00Z", wait_until="load")
    try:
        # ?t= starts paused: the view renders on demand, so one frame is enough
        solar.wait_for_function(
            "() => window.solarState && window.solarState.ready && window.solarState.frames >= 1", timeout=60_000
        )
    except Exception as exc:
        raise AssertionError(
            f"/solar did not render: {problems} {solar.evaluate('JSON.stringify(window.solarState || null)')}"
        ) from exc
    check_and_save(solar, "solar")
    context.close()
