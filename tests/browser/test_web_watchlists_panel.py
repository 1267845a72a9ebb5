"""The dashboard's watchlists panel in headless Chromium, without Ray: the real pages and the real
watchlist routes over uvicorn on loopback, a real SQLite store, a watchlist with a recorded match.

The other panels' routes (model, alerts...) are not mounted here: the panel must work on its own.
The watchlist entry is CONSTRUCTED around a real alert position (ZTF21abiuvdk); its match is recorded
by the same code the live path runs (``Watchlists.match`` + ``record``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI

from cosmic_ray.core.config import Settings
from cosmic_ray.serve import context, web
from cosmic_ray.serve.routes import watchlists
from cosmic_ray.serve.store import Store
from cosmic_ray.serve.watchlists import AlertPosition, EntryIn, Watchlists

try:
    from web_server import serve_app
except ImportError:  # tests/ made a package
    from tests.web_server import serve_app

try:
    from browser_kit import CHROMIUM_ARGS, chromium_path
except ImportError:  # tests/ made a package
    from tests.browser_kit import CHROMIUM_ARGS, chromium_path

try:
    from api_context import model_free_context
except ImportError:  # tests/ made a package
    from tests.api_context import model_free_context

pytestmark = pytest.mark.timeout(120)


def test_the_panel_lists_your_watchlists_matches_and_adds_one_from_csv(tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    settings = Settings(home=tmp_path)
    store = Store.open(settings.event_store_url)
    store.accounts.add_user("ada", "astronomer web password 1", role="astronomer")
    lists = Watchlists(store.engine)
    wl = lists.create("ada", "SN 2021rhu host", [EntryIn("rhu", 333.2378, 36.6427, 10.0)])
    lists.record(lists.match([AlertPosition(1594391240015015002, "ZTF21abiuvdk", 333.2379, 36.6428)]))
    ctx = model_free_context(settings, store)
    monkeypatch.setattr(context, "_CONTEXT", {})
    context.configure(ctx)
    web.configure(store.accounts, settings)
    app = FastAPI()
    app.include_router(watchlists.router)
    web.mount_web(app)
    session_id, _ = store.accounts.create_session("ada", timedelta(hours=1))
    with serve_app(app) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page_context = browser.new_context()
            page_context.add_cookies([{"name": "cr_session", "value": session_id, "url": url}])
            page = page_context.new_page()
            page.goto(f"{url}/")
            page.wait_for_function("() => window.watchlistsState && window.watchlistsState.polls > 0", timeout=30000)
            item = page.locator(f'[data-watchlist="{wl["id"]}"]')
            assert "SN 2021rhu host" in item.inner_text() and "ZTF21abiuvdk" in item.inner_text()
            assert "entry:rhu" in item.inner_text()
            page.fill("#watchlist-name", "from the form")
            page.fill("#watchlist-csv", "name,ra,dec,radius\nM101,210.802,54.349,60\n")
            page.click("#watchlist-form button[type=submit]")
            page.wait_for_function("() => window.watchlistsState.lists === 2", timeout=30000)
            assert "added from the form (1 positions)" in page.inner_text("#watchlist-note")
            assert page.inner_text("#watchlists-count") == "2"
        finally:
            browser.close()
    assert [w["name"] for w in lists.list_for("ada")] == ["SN 2021rhu host", "from the form"]
    store.close()
