"""``/watchlists`` and ``/subscriptions`` over real HTTP (uvicorn on loopback) with a real SQLite store and
real users, without Ray: JSON, CSV and MOC uploads, who sees what, 401 before the body, webhook URLs
refused when private, stored encrypted and shown masked.

The MOC is built by ``mocpy`` around a real alert position (ZTF21abiuvdk, SN 2021rhu); the
watchlist entries are CONSTRUCTED test values.
"""

from __future__ import annotations

import secrets
import sqlite3

import astropy.units as u
import httpx
import pytest
from astropy.coordinates import Latitude, Longitude
from fastapi import FastAPI
from mocpy import MOC

from cosmic_ray.core.config import Settings
from cosmic_ray.serve import context
from cosmic_ray.serve.routes import subscriptions, watchlists
from cosmic_ray.serve.store import Store

try:
    from web_server import serve_app
except ImportError:  # tests/ made a package
    from tests.web_server import serve_app

try:
    from api_context import model_free_context
except ImportError:  # tests/ made a package
    from tests.api_context import model_free_context

pytestmark = pytest.mark.timeout(120)
USERS = {"viewer": "viewer", "astro": "astronomer", "astro2": "astronomer", "admin": "admin"}
RA, DEC = 333.2378, 36.6427  # approximately ZTF21abiuvdk (SN 2021rhu)


@pytest.fixture
def api(tmp_path, monkeypatch):
    """``(base_url, tokens, settings)``: the two routers with a configured ingress context."""
    settings = Settings(home=tmp_path, webhook_allow=["127.0.0.2"])
    store = Store.open(settings.event_store_url)
    tokens = {}
    for name, role in USERS.items():
        store.accounts.add_user(name, f"{name} password 123", role=role)
        tokens[name] = {"Authorization": f"Bearer {store.accounts.create_token(name).token}"}
    ctx = model_free_context(settings, store)
    monkeypatch.setattr(context, "_CONTEXT", {})
    context.configure(ctx)
    app = FastAPI()
    app.include_router(watchlists.router)
    app.include_router(subscriptions.router)
    with serve_app(app) as url:
        yield url, tokens, settings
    store.close()


def test_json_csv_and_moc_watchlists_and_who_sees_them(api, tmp_path):
    url, tokens, _ = api
    body = {"name": "hosts", "entries": [{"name": "SN2021rhu", "ra": RA, "dec": DEC, "radius_arcsec": 5}]}
    made = httpx.post(f"{url}/watchlists", json=body, headers=tokens["astro"])
    assert made.status_code == 201, made.text
    wl = made.json()
    assert wl["owner"] == "astro" and wl["entries"][0]["radius_arcsec"] == 5
    assert httpx.post(f"{url}/watchlists", json=body, headers=tokens["astro"]).status_code == 409

    csv_text = "name,ra,dec,radius\nM101,210.802,54.349,60\nNGC 4993,197.4487,-23.3839,30\n"
    made_csv = httpx.post(
        f"{url}/watchlists",
        params={"name": "galaxies"},
        content=csv_text,
        headers={**tokens["astro"], "Content-Type": "text/csv"},
    )
    assert made_csv.status_code == 201, made_csv.text
    assert [e["name"] for e in made_csv.json()["entries"]] == ["M101", "NGC 4993"]
    bad_csv = httpx.post(
        f"{url}/watchlists",
        params={"name": "bad"},
        content="name,ra,dec,radius\nx,999,0,1\n",
        headers={**tokens["astro"], "Content-Type": "text/csv"},
    )
    assert bad_csv.status_code == 422 and "line 2" in bad_csv.json()["detail"]

    moc = MOC.from_cone(lon=Longitude(RA * u.deg), lat=Latitude(DEC * u.deg), radius=1 * u.deg, max_depth=10)
    moc.save(str(tmp_path / "gw.fits"), format="fits", overwrite=True)
    made_moc = httpx.post(
        f"{url}/watchlists",
        data={"name": "GW-like region"},
        files={"moc": ("gw.fits", (tmp_path / "gw.fits").read_bytes(), "application/fits")},
        headers=tokens["astro2"],
    )
    assert made_moc.status_code == 201, made_moc.text
    assert made_moc.json()["regions"][0]["sky_fraction"] == pytest.approx(moc.sky_fraction)
    garbage = httpx.post(
        f"{url}/watchlists",
        data={"name": "junk"},
        files={"moc": ("x.fits", b"not fits" * 50)},
        headers=tokens["astro2"],
    )
    assert garbage.status_code == 422 and "MOC" in garbage.json()["detail"]

    mine = httpx.get(f"{url}/watchlists", headers=tokens["astro"]).json()
    assert {w["name"] for w in mine} == {"hosts", "galaxies"}
    assert [w["name"] for w in httpx.get(f"{url}/watchlists", headers=tokens["astro2"]).json()] == ["GW-like region"]
    assert httpx.get(f"{url}/watchlists", headers=tokens["viewer"]).json() == []  # a viewer reads their own: none
    # another user's watchlist and its matches are not found (not even that they exist)
    for who in ("viewer", "astro2"):
        assert httpx.get(f"{url}/watchlists/{wl['id']}", headers=tokens[who]).status_code == 404
        assert httpx.get(f"{url}/watchlists/{wl['id']}/matches", headers=tokens[who]).status_code == 404
    assert httpx.delete(f"{url}/watchlists/{wl['id']}", headers=tokens["astro2"]).status_code == 404
    assert httpx.get(f"{url}/watchlists/{wl['id']}", headers=tokens["admin"]).status_code == 200
    assert httpx.get(f"{url}/watchlists/{wl['id']}/matches", headers=tokens["astro"]).json() == []
    # a viewer may not create; nobody anonymous gets past the door, whatever the body
    assert httpx.post(f"{url}/watchlists", json=body, headers=tokens["viewer"]).status_code == 403
    assert httpx.delete(f"{url}/watchlists/{wl['id']}", headers=tokens["astro"]).status_code == 204
    assert httpx.get(f"{url}/watchlists/{wl['id']}", headers=tokens["astro"]).status_code == 404


def test_anonymous_calls_are_401_before_the_body_is_read(api):
    url, _, _ = api
    for method, path in (
        ("POST", "/watchlists"),
        ("GET", "/watchlists"),
        ("GET", "/watchlists/1"),
        ("DELETE", "/watchlists/1"),
        ("POST", "/watchlists/1/regions"),
        ("GET", "/watchlists/1/matches"),
        ("POST", "/subscriptions"),
        ("GET", "/subscriptions"),
        ("DELETE", "/subscriptions/1"),
    ):
        answer = httpx.request(
            method, f"{url}{path}", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 401, (method, path, answer.status_code)


def test_subscriptions_refuse_private_hooks_keep_urls_encrypted_and_masked(api, tmp_path, caplog):
    url, tokens, settings = api
    secret_path = "/services/" + secrets.token_hex(12)
    for target in (
        "http://127.0.0.1:8265/api/jobs/",
        "http://169.254.169.254/latest/",
        "http://[::1]/",
        "ftp://x.org/",
    ):
        refused = httpx.post(
            f"{url}/subscriptions",
            json={"kind": "novel", "params": {"min_score": 0.9}, "url": target + secret_path},
            headers=tokens["astro"],
        )
        assert refused.status_code == 422, target
        assert secret_path not in refused.text
    allowed_hook = f"http://127.0.0.2:9{secret_path}"  # on the allow-list of this test's settings
    made = httpx.post(
        f"{url}/subscriptions",
        json={"kind": "class", "params": {"label": "SLSN-I", "min_probability": 0.5}, "url": allowed_hook},
        headers=tokens["astro"],
    )
    assert made.status_code == 201, made.text
    shown = made.json()
    assert shown["url"] == "http://127.0.0.2:9/…" and secret_path not in made.text
    assert httpx.get(f"{url}/subscriptions", headers=tokens["astro"]).json() == [shown]
    assert httpx.get(f"{url}/subscriptions", headers=tokens["astro2"]).json() == []
    for who in ("viewer", "astro2"):
        assert httpx.get(f"{url}/subscriptions/{shown['id']}", headers=tokens[who]).status_code == 404
    assert httpx.delete(f"{url}/subscriptions/{shown['id']}", headers=tokens["astro2"]).status_code == 404
    assert httpx.get(f"{url}/subscriptions/{shown['id']}", headers=tokens["admin"]).json()["url"] == shown["url"]
    # a watchlist subscription must name one of the caller's own watchlists
    theirs = httpx.post(f"{url}/watchlists", json={"name": "theirs", "entries": []}, headers=tokens["astro2"]).json()[
        "id"
    ]
    stolen = httpx.post(
        f"{url}/subscriptions",
        json={"kind": "watchlist", "params": {"watchlist_id": theirs}, "url": allowed_hook},
        headers=tokens["astro"],
    )
    assert stolen.status_code == 422
    assert (
        httpx.post(
            f"{url}/subscriptions", json={"kind": "novel", "url": allowed_hook}, headers=tokens["viewer"]
        ).status_code
        == 403
    )
    raw = (tmp_path / "events.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("events.db-*"))
    assert secret_path.encode() not in raw  # neither the database nor its WAL holds the URL in clear
    rows = sqlite3.connect(tmp_path / "events.db").execute("SELECT url_encrypted FROM subscriptions").fetchall()
    assert rows and all(secret_path not in r[0] for r in rows)
    assert secret_path not in caplog.text
    assert httpx.delete(f"{url}/subscriptions/{shown['id']}", headers=tokens["astro"]).status_code == 204


def test_out_of_range_ids_and_params_are_422_not_500(api):
    url, tokens, _ = api
    for path in ("/watchlists/99999999999999999999999", "/subscriptions/0", "/watchlists/-1/matches"):
        assert httpx.get(f"{url}{path}", headers=tokens["astro"]).status_code == 422, path
    hook = "http://127.0.0.2:9/x"
    for body in (
        {"kind": "watchlist", "params": {"watchlist_id": 10**30}, "url": hook},
        {"kind": "novel", "params": {"min_score": "nan"}, "url": hook},
        {"kind": "class", "params": {"label": "SN Ia", "min_probability": 2}, "url": hook},
        {"kind": "novel", "params": {}, "url": "http://exa\x00mple.org/x"},
        {"kind": "novel", "params": {}, "url": "http://[::1/x"},
    ):
        answer = httpx.post(f"{url}/subscriptions", json=body, headers=tokens["astro"])
        assert answer.status_code == 422, (body, answer.status_code, answer.text)


def test_without_a_webhook_key_a_subscription_is_503_with_what_to_do(api, tmp_path):
    """A serving pod whose home is read-only and that has no COSMIC_RAY_WEBHOOK_KEY cannot encrypt a URL."""
    url, tokens, settings = api
    (tmp_path / "webhook.key").mkdir()  # the key file cannot be made or read here
    answer = httpx.post(
        f"{url}/subscriptions", json={"kind": "novel", "url": "http://127.0.0.2:9/x"}, headers=tokens["astro"]
    )
    assert answer.status_code == 503 and "COSMIC_RAY_WEBHOOK_KEY" in answer.json()["detail"]
