"""The web bundle: which npm files the pages load, where the app finds them, and 404 (never 500).

No Ray: the web router runs in uvicorn on a loopback port, asked over raw HTTP (paths sent as
they are, dot segments and escapes included), once with a checkout-like folder whose
``node_modules`` is missing and once with the bundle the wheel ships (``assets.bundle_web``).
"""

from __future__ import annotations

import http.client
import shutil
from pathlib import Path

import pytest
from fastapi import FastAPI

from cosmic_ray.core import resources
from cosmic_ray.serve import assets
from cosmic_ray.serve.web import default_web_dir, vendor_dir, web_router

try:
    from web_server import serve_app
except ImportError:  # tests/ made a package
    from tests.web_server import serve_app

REPO = Path(__file__).resolve().parents[3]
WEB = REPO / "web"

# Paths that leave /vendor/<package>/ or name files no page loads: all 404 (400 allowed for odd escapes).
ESCAPES = [
    "/vendor/three/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
    "/vendor/three/../../package.json",
    "/vendor/three/..%2f..%2f..%2fpyproject.toml",
    "/vendor/three/..%5c..%5cpackage.json",
    "/vendor/three//etc/passwd",
    "/vendor/world-atlas/%2e%2e/three/package.json/..",
    "/vendor/commander/package.json",  # in node_modules, not a served package
    "/static/js/%2e%2e/%2e%2e/pyproject.toml",
]


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


@pytest.fixture(scope="module")
def node_modules() -> Path:
    path = WEB / assets.NODE_MODULES / "three" / "build" / "three.module.js"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `npm ci` in {WEB}")
    return WEB / assets.NODE_MODULES


@pytest.fixture(scope="module")
def pages_only(tmp_path_factory) -> Path:
    """The pages of web/ without node_modules: a checkout before `npm ci`."""
    dest = tmp_path_factory.mktemp("pages_only") / "web"
    shutil.copytree(WEB, dest, ignore=shutil.ignore_patterns(assets.NODE_MODULES))
    return dest


@pytest.fixture(scope="module")
def bundle(node_modules, tmp_path_factory) -> Path:
    """What the wheel ships as cosmic_ray/_bundled/web."""
    dest = tmp_path_factory.mktemp("bundle") / "web"
    assets.bundle_web(WEB, dest)
    return dest


def _served(web_dir: Path):
    app = FastAPI()
    app.include_router(web_router(web_dir))
    return serve_app(app)


# ------------------------------------------------------------------ 404, never 500


def test_missing_vendor_packages_answer_404_not_500(pages_only, caplog):
    with caplog.at_level("WARNING"), _served(pages_only) as url:
        for path in ["/vendor/three/build/three.module.js", "/vendor/world-atlas/land-110m.json", *ESCAPES]:
            status, body = _raw_get(url, path)
            assert status in (400, 404), (path, status, body[:200])
            assert b"[project]" not in body and b"root:" not in body
        status, body = _raw_get(url, "/login")
        assert status == 200 and b"login-form" in body  # the pages themselves still serve
    assert "npm ci" in caplog.text  # and the log says what to do


def test_bundle_serves_what_the_pages_load_and_nothing_else(bundle):
    with _served(bundle) as url:
        for rel in assets.vendor_files(WEB):
            status, _ = _raw_get(url, f"/vendor/{rel}")
            assert status == 200, rel
        assert _raw_get(url, "/static/js/login.js")[0] == 200
        # in node_modules but loaded by no page: not shipped, so 404
        assert _raw_get(url, "/vendor/three/src/Three.js")[0] == 404
        assert _raw_get(url, "/vendor/three/examples/jsm/loaders/GLTFLoader.js")[0] == 404
        for path in ESCAPES:
            status, body = _raw_get(url, path)
            assert status in (400, 404), (path, status)
            assert b"[project]" not in body and b"root:" not in body


# ------------------------------------------------------------------ what the build ships


def test_vendor_files_follow_the_pages_imports(node_modules):
    files = assets.vendor_files(WEB)
    # the import maps, the modules they import (three.module.js -> three.core.js), the addons
    # solar.js imports, topojson-client's own modules, and the JSON solar.js fetches
    for rel in [
        "three/build/three.module.js",
        "three/build/three.core.js",
        "three/examples/jsm/controls/OrbitControls.js",
        "three/examples/jsm/renderers/CSS2DRenderer.js",
        "topojson-client/src/index.js",
        "topojson-client/src/feature.js",
        "world-atlas/land-110m.json",
        "three/LICENSE",
    ]:
        assert rel in files, rel
    assert not [f for f in files if f.startswith(("commander/", "three/src/"))]
    size = sum((node_modules / f).stat().st_size for f in files)
    total = sum(p.stat().st_size for p in node_modules.rglob("*") if p.is_file())
    assert size < total / 5, (size, total)


def test_a_page_needing_a_missing_file_fails_the_bundle(pages_only, tmp_path):
    with pytest.raises(assets.AssetError, match="npm ci"):
        assets.vendor_files(pages_only)
    with pytest.raises(assets.AssetError, match="npm ci"):
        assets.bundle_web(pages_only, tmp_path / "out")


def test_unmapped_bare_import_is_an_error(bundle, tmp_path):
    web = tmp_path / "web"
    shutil.copytree(WEB, web, ignore=shutil.ignore_patterns(assets.NODE_MODULES))
    (web / assets.NODE_MODULES).symlink_to(WEB / assets.NODE_MODULES)
    (web / "js" / "extra.js").write_text('import { x } from "left-pad";\n')
    with pytest.raises(assets.AssetError, match="left-pad"):
        assets.vendor_files(web)


# ------------------------------------------------------------------ where the app looks


def test_a_checkout_serves_its_own_web_folder():
    # In this checkout (editable install) nothing is bundled: web/ and configs/ are used in place.
    assert resources.bundled_dir(resources.WEB) is None
    assert default_web_dir() == WEB
    assert vendor_dir(WEB) == WEB / assets.NODE_MODULES


def test_vendor_dir_prefers_the_bundle(bundle):
    assert vendor_dir(bundle) == bundle / assets.VENDOR


def test_default_configs_are_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = resources.config_file("configs/serve.yaml")
    assert shipped == REPO / "configs" / "serve.yaml"
    from cosmic_ray.core.config import load_train_config
    from cosmic_ray.ops.deploy import load_app_config

    assert load_app_config()["import_path"] == "cosmic_ray.serve.app:build_app"
    assert load_train_config("configs/train.yaml").epochs >= 1
    # a config of the working folder wins over the shipped one
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "train.yaml").write_text("epochs: 1\n")
    assert resources.config_file("configs/train.yaml") == Path("configs/train.yaml")
    assert load_train_config("configs/train.yaml").epochs == 1
    # anything else that is missing stays missing, for the caller to report
    assert resources.config_file("mine/train.yaml") == Path("mine/train.yaml")
    assert resources.config_file("configs/nope.yaml") == Path("configs/nope.yaml")
