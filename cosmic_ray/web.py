"""The browser pages, served from the same origin as the API.

Pages are plain HTML with ES modules (no bundler). ``web/`` holds them; its
``node_modules`` (``npm ci`` in ``web/``) provides three.js and the small data
packages the pages import through an import map.

Routes:

- ``/solar`` (and ``/``, ``/login`` once ``index.html`` / ``login.html`` exist): the pages.
- ``/static/js/...``, ``/static/css/...``: the pages' own modules and styles.
- ``/vendor/<package>/...``: files of the allowed npm packages (``VENDOR_PACKAGES``).

Static files go through Starlette's ``StaticFiles``, which refuses any path that
resolves outside its directory, so ``/static/../pyproject.toml`` and friends are 404.

Example:
    >>> from fastapi import FastAPI
    >>> from cosmic_ray.web import mount_web
    >>> app = FastAPI()
    >>> mount_web(app)  # or: app.include_router(web_router())
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

log = logging.getLogger(__name__)

#: URL path -> HTML file in the web folder. A page is routed only when its file exists.
PAGES: dict[str, str] = {
    "/": "index.html",
    "/login": "login.html",
    "/solar": "solar.html",
}

#: Sub-folders of the web folder served under ``/static/<name>/``.
ASSET_DIRS: tuple[str, ...] = ("js", "css", "img")

#: npm packages (in ``web/node_modules``) served under ``/vendor/<name>/``.
VENDOR_PACKAGES: tuple[str, ...] = ("three", "topojson-client", "world-atlas")

# HTML must be revalidated so a redeploy is picked up at once; assets use ETags.
_HTML_HEADERS = {"Cache-Control": "no-cache"}


def default_web_dir() -> Path:
    """The ``web/`` folder of a source checkout (next to the ``cosmic_ray`` package)."""
    return Path(__file__).resolve().parent.parent / "web"


def _page_endpoint(html: Path):
    async def page() -> FileResponse:
        return FileResponse(html, media_type="text/html", headers=_HTML_HEADERS)

    page.__name__ = f"page_{html.stem}"
    return page


def web_router(web_dir: Path | None = None) -> APIRouter:
    """Build a router that serves the pages, their assets and the vendored npm packages.

    Include it with ``app.include_router(web_router())``. Its static folders are
    ``Mount`` routes, which ``include_router`` carries over in the FastAPI this project
    pins (0.165); for an older FastAPI use ``mount_web``, which mounts them on the app.

    Args:
        web_dir: Folder with the HTML pages, ``js/``, ``css/`` and ``node_modules/``;
            defaults to ``default_web_dir()``.

    Returns:
        A router with no prefix; the pages are not part of the OpenAPI schema.

    Raises:
        FileNotFoundError: ``web_dir`` does not exist.
    """
    web_dir = (web_dir or default_web_dir()).resolve()
    if not web_dir.is_dir():
        raise FileNotFoundError(
            f"web folder {web_dir} not found; pass web_dir= or run from a source checkout"
        )
    router = APIRouter()
    for url, name in PAGES.items():
        html = web_dir / name
        if html.is_file():
            router.add_api_route(
                url,
                _page_endpoint(html),
                methods=["GET"],
                include_in_schema=False,
                response_class=FileResponse,
            )
    for sub in ASSET_DIRS:
        folder = web_dir / sub
        if folder.is_dir():
            router.mount(f"/static/{sub}", StaticFiles(directory=folder), name=f"static-{sub}")
    node_modules = web_dir / "node_modules"
    for package in VENDOR_PACKAGES:
        folder = node_modules / package
        if not folder.is_dir():
            log.warning(
                "%s is missing: pages that import %r will fail; run `npm ci` in %s",
                folder, package, web_dir,
            )
        # check_dir=False: the app still starts (and the API works) without node_modules.
        router.mount(
            f"/vendor/{package}",
            StaticFiles(directory=folder, check_dir=False),
            name=f"vendor-{package}",
        )
    return router


def mount_web(app: FastAPI, web_dir: Path | None = None) -> None:
    """Serve the web pages from ``app`` (works with any FastAPI version).

    Args:
        app: The FastAPI app (for Ray Serve, the one given to ``serve.ingress``).
        web_dir: As in ``web_router``.
    """
    router = web_router(web_dir)
    pages = APIRouter()
    for route in router.routes:
        if hasattr(route, "app") and isinstance(route.app, StaticFiles):
            app.mount(route.path, route.app, name=route.name)
        else:
            pages.routes.append(route)
    app.include_router(pages)
