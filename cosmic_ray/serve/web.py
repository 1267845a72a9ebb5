"""The browser pages, served from the same origin as the API.

Pages are plain HTML with ES modules (no bundler), importing three.js and two small data
packages through an import map. An installed package serves its own copy
(``cosmic_ray/_bundled/web/``, the npm files the pages load under ``vendor/``, put there by the
build, see ``serve/assets.py``); a source checkout serves ``web/`` with its ``node_modules``
(``npm ci`` in ``web/``).

Routes:

- ``/login`` (public), ``/`` and ``/solar`` (a valid ``cr_session`` cookie required, else a
  303 redirect to ``login?next=...``): the pages, routed once their HTML file exists.
- ``/static/js/...``, ``/static/css/...``: the pages' own modules and styles (public).
- ``/vendor/<package>/...``: files of the allowed npm packages (``VENDOR_PACKAGES``, public);
  404 for a file (or a whole package) that is not there.
- ``GET /web/config`` and ``GET /web/apod`` (session required, else 401): links to the Ray
  dashboard and the MLflow UI, and NASA's Astronomy Picture of the Day fetched by the server
  with ``COSMIC_RAY_APOD_API_KEY`` (``{"available": false, ...}`` when it cannot be reached).
- ``GET /web/runs/{run_id}/evaluation`` and ``.../figures/{name}.png`` (session required): the
  validation metrics and figures MLflow holds for the run behind the served model.

Sessions are checked against the accounts (``Store.accounts``) given to ``configure`` (the Serve ingress passes
its own) or to ``web_router(store=...)``; without either, the store of ``Settings()``.

Static files go through Starlette's ``StaticFiles``, which refuses any path that
resolves outside its directory, so ``/static/../pyproject.toml`` and friends are 404; a folder
that is missing is not mounted (404, never 500).

Example:
    >>> from fastapi import FastAPI
    >>> from cosmic_ray.serve.web import mount_web
    >>> app = FastAPI()
    >>> mount_web(app)  # or: app.include_router(web_router())
"""

# No `from __future__ import annotations`: the route functions are pickled by Ray Serve and
# FastAPI must see real types on them (string annotations would not resolve there).

import asyncio
import logging
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from cosmic_ray.core import resources
from cosmic_ray.core.config import Settings
from cosmic_ray.serve.assets import NODE_MODULES, PAGE_DIRS, VENDOR
from cosmic_ray.serve.auth import SESSION_COOKIE
from cosmic_ray.serve.redact import strip_credentials
from cosmic_ray.serve.schemas import ApodInfo, ErrorResponse, ModelEvaluation, WebConfig
from cosmic_ray.serve.store import Store

if TYPE_CHECKING:
    from cosmic_ray.core.config import Settings
    from cosmic_ray.serve.accounts import Accounts, Principal

log = logging.getLogger(__name__)

#: URL path -> HTML file in the web folder. A page is routed only when its file exists.
PAGES: dict[str, str] = {
    "/": "index.html",
    "/login": "login.html",
    "/solar": "solar.html",
}

#: Pages anyone may open; every other page needs a valid session.
PUBLIC_PAGES: frozenset[str] = frozenset({"/login"})

APOD_URL = "https://api.nasa.gov/planetary/apod"

#: Origins of the pictures ``/web/apod`` links to (NASA's images; YouTube and Vimeo thumbnails on
#: video days): the only foreign origins the pages' Content-Security-Policy lets images come from.
APOD_IMAGE_ORIGINS: tuple[str, ...] = ("https://apod.nasa.gov", "https://img.youtube.com", "https://i.vimeocdn.com")

#: Sub-folders of the web folder served under ``/static/<name>/``.
ASSET_DIRS: tuple[str, ...] = PAGE_DIRS

#: npm packages (``vendor/`` of the installed copy, ``node_modules`` of a checkout) served under ``/vendor/<name>/``.
VENDOR_PACKAGES: tuple[str, ...] = ("three", "topojson-client", "world-atlas")

# HTML must be revalidated so a redeploy is picked up at once; assets use ETags.
_HTML_HEADERS = {"Cache-Control": "no-cache"}


def default_web_dir() -> Path:
    """The pages shipped with the installed package, else the ``web/`` folder of the source checkout."""
    return resources.resource_dir(resources.WEB)


def page_files(web_dir: Path | None = None) -> list[Path]:
    """The HTML files of ``PAGES`` that exist in ``web_dir`` (default: ``default_web_dir()``)."""
    folder = web_dir or default_web_dir()
    return [folder / name for name in PAGES.values() if (folder / name).is_file()]


def vendor_dir(web_dir: Path) -> Path:
    """Where ``web_dir`` keeps the npm packages: ``vendor/`` (an installed copy), else ``node_modules/``."""
    bundled = web_dir / VENDOR
    return bundled if bundled.is_dir() else web_dir / NODE_MODULES


# What the pages check sessions against, set once per process by ``configure`` (the ingress).
_CONFIGURED: dict[str, Any] = {}


def configure(store: "Accounts | None" = None, settings: "Settings | None" = None) -> None:
    """Check page sessions against ``store`` and read links and the APOD key from ``settings``."""
    if store is not None:
        _CONFIGURED["store"] = store
    if settings is not None:
        _CONFIGURED["settings"] = settings


def _settings() -> "Settings":
    if "settings" not in _CONFIGURED:
        _CONFIGURED["settings"] = Settings()
    return _CONFIGURED["settings"]


def _store() -> "Accounts":
    if "store" not in _CONFIGURED:
        _CONFIGURED["store"] = Store.open(_settings().event_store_url).accounts
    return _CONFIGURED["store"]


def session_principal(request: Request, store: "Accounts | None" = None) -> "Principal | None":
    """The user of the request's ``cr_session`` cookie, or None (no cookie, expired, logged out)."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    return (store or _store()).principal_for_session(session_id)


def _login_redirect(request: Request) -> RedirectResponse:
    """303 to the login page, relative (works under a prefix), remembering where to come back."""
    here = request.url.path.rsplit("/", 1)[-1] or "."
    target = here + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"login?next={quote(target, safe='')}", status_code=303, headers=_HTML_HEADERS)


def _page_endpoint(html: Path, public: bool, store: "Accounts | None"):
    async def page(request: Request):
        if not public and session_principal(request, store) is None:
            return _login_redirect(request)
        return FileResponse(html, media_type="text/html", headers=_HTML_HEADERS)

    page.__name__ = f"page_{html.stem}"
    return page


def _require_session(request: Request, store: "Accounts | None") -> "Principal":
    principal = session_principal(request, store)
    if principal is None:
        raise HTTPException(status_code=401, detail="log in first")
    return principal


def web_config(settings: "Settings") -> WebConfig:
    """Links the dashboard shows (the Ray dashboard, the MLflow UI and how to start it)."""
    return WebConfig(  # credentials stripped: any signed-in user sees these
        ray_dashboard_url=strip_credentials(settings.dashboard_url),
        mlflow_ui_url=strip_credentials(settings.mlflow_ui_url),
        mlflow_ui_command=f"mlflow ui --backend-store-uri {strip_credentials(settings.tracking_uri)}",
        apod_configured=bool(settings.apod_api_key),
    )


_APOD_CACHE: dict[tuple[str, str], tuple[float, ApodInfo]] = {}
_APOD_OK_TTL_S = 3600.0
_APOD_FAIL_TTL_S = 60.0


def https_only(url: object) -> str | None:
    """``url`` if it is an ``https:`` URL with a host, else None (no ``javascript:``, ``data:`` or plain ``http:``)."""
    if not isinstance(url, str):
        return None
    parts = urlsplit(url.strip())
    return url.strip() if parts.scheme.lower() == "https" and parts.netloc else None


async def fetch_apod(api_key: str | None, timeout_s: float = 4.0, url: str | None = None) -> ApodInfo:
    """Today's Astronomy Picture of the Day from NASA (``url``: ``APOD_URL``), or ``available=False`` and why.

    Never raises for network trouble: offline, a bad key or an odd answer all give the
    unavailable state (the page then shows no picture at all). Only ``https:`` links are passed on
    (an answer whose picture is not one is unavailable). Answers are cached in-process.
    """
    if not api_key:
        return ApodInfo(available=False, reason="no APOD API key configured (COSMIC_RAY_APOD_API_KEY)")
    url = url or APOD_URL
    cached = _APOD_CACHE.get((url, api_key))
    if cached and cached[0] > time.monotonic():
        return cached[1]
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            answer = await client.get(url, params={"api_key": api_key, "thumbs": "true"})
        answer.raise_for_status()
        data = answer.json()
        media = data.get("media_type", "")
        image = https_only(data.get("url") if media == "image" else data.get("thumbnail_url"))
        if not image:
            raise ValueError(f"no https picture in the answer (media_type {media!r})")
        info = ApodInfo(
            available=True,
            title=data.get("title"),
            date=data.get("date"),
            explanation=data.get("explanation"),
            image_url=image,
            page_url=https_only(data.get("hdurl")) or https_only(data.get("url")),
            copyright=data.get("copyright"),
        )
        ttl = _APOD_OK_TTL_S
    except (httpx.HTTPError, ValueError) as exc:
        log.info("APOD unavailable: %s", exc)
        info = ApodInfo(available=False, reason=f"NASA APOD could not be reached ({type(exc).__name__})")
        ttl = _APOD_FAIL_TTL_S
    _APOD_CACHE[(url, api_key)] = (time.monotonic() + ttl, info)
    return info


_FIGURE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}\.png$")
_RUN_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")


def model_evaluation(settings: "Settings", run_id: str) -> ModelEvaluation:
    """Metrics and figure names of an MLflow run (through ``registry``, the module that talks to MLflow)."""
    # deferred: MLflow (the registry) is heavy and only the evaluation page needs it
    from cosmic_ray.learn import registry

    client = registry.configure(settings)
    run = client.get_run(run_id)
    figures = sorted(
        a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(run_id, "figures") if a.path.endswith(".png")
    )
    return ModelEvaluation(run_id=run_id, metrics=dict(run.data.metrics), figures=figures)


def model_figure(settings: "Settings", run_id: str, name: str) -> bytes:
    # deferred: MLflow (the registry) is heavy and only the evaluation page needs it
    from cosmic_ray.learn import registry

    client = registry.configure(settings)
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, f"figures/{name}", tmp)).read_bytes()


def _web_api_routes(router: APIRouter, store: "Accounts | None") -> None:
    async def config(request: Request) -> WebConfig:
        _require_session(request, store)
        return web_config(_settings())

    async def apod(request: Request) -> ApodInfo:
        _require_session(request, store)
        return await fetch_apod(_settings().apod_api_key)

    async def evaluation(run_id: str, request: Request) -> ModelEvaluation:
        _require_session(request, store)
        if not _RUN_ID.match(run_id):
            raise HTTPException(status_code=422, detail="run_id: letters and digits only")
        try:
            return await asyncio.to_thread(model_evaluation, _settings(), run_id)
        except Exception as exc:  # unknown run, tracking server down: say so, the page shows it
            raise HTTPException(
                status_code=404, detail=f"no evaluation for run {run_id}: {type(exc).__name__}"
            ) from exc

    async def figure(run_id: str, name: str, request: Request) -> Response:
        _require_session(request, store)
        if not (_RUN_ID.match(run_id) and _FIGURE_NAME.match(name)):
            raise HTTPException(status_code=404, detail="no such figure")
        try:
            png = await asyncio.to_thread(model_figure, _settings(), run_id, name)
        except Exception as exc:
            raise HTTPException(status_code=404, detail=f"no figure {name} in run {run_id}") from exc
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    errors: dict[int | str, dict[str, Any]] = {401: {"model": ErrorResponse, "description": "no valid session"}}
    not_found: dict[int | str, dict[str, Any]] = {
        **errors,
        404: {"model": ErrorResponse, "description": "unknown run or figure"},
    }
    router.add_api_route(
        "/web/runs/{run_id}/evaluation",
        evaluation,
        methods=["GET"],
        response_model=ModelEvaluation,
        tags=["web"],
        responses=not_found,
    )
    router.add_api_route(
        "/web/runs/{run_id}/figures/{name}",
        figure,
        methods=["GET"],
        response_class=Response,
        tags=["web"],
        responses=not_found,
    )
    router.add_api_route(
        "/web/config", config, methods=["GET"], response_model=WebConfig, tags=["web"], responses=errors
    )
    router.add_api_route("/web/apod", apod, methods=["GET"], response_model=ApodInfo, tags=["web"], responses=errors)


def web_router(web_dir: Path | None = None, store: "Accounts | None" = None) -> APIRouter:
    """Build a router that serves the pages, their assets and the vendored npm packages.

    Include it with ``app.include_router(web_router())``. Its static folders are
    ``Mount`` routes, which ``include_router`` carries over in the FastAPI this project
    pins (0.165); for an older FastAPI use ``mount_web``, which mounts them on the app.

    Args:
        web_dir: Folder with the HTML pages, ``js/``, ``css/`` and ``vendor/`` (an installed
            copy) or ``node_modules/`` (a checkout); defaults to ``default_web_dir()``.
        store: Accounts (``Store.accounts``) that hold the login sessions; defaults to the one given to
            ``configure``, else that of ``Settings()``.

    Returns:
        A router with no prefix; the pages are not part of the OpenAPI schema.

    Raises:
        FileNotFoundError: ``web_dir`` does not exist.
    """
    web_dir = (web_dir or default_web_dir()).resolve()
    if not web_dir.is_dir():
        raise FileNotFoundError(f"web folder {web_dir} not found; pass web_dir= or run from a source checkout")
    router = APIRouter()
    for url, name in PAGES.items():
        html = web_dir / name
        if html.is_file():
            router.add_api_route(
                url,
                _page_endpoint(html, url in PUBLIC_PAGES, store),
                methods=["GET"],
                include_in_schema=False,
                response_class=FileResponse,
            )
    _web_api_routes(router, store)
    for sub in ASSET_DIRS:
        folder = web_dir / sub
        if folder.is_dir():
            router.mount(f"/static/{sub}", StaticFiles(directory=folder), name=f"static-{sub}")
    packages = vendor_dir(web_dir)
    for package in VENDOR_PACKAGES:
        folder = packages / package
        if not folder.is_dir():
            # Not mounted: its URLs are 404 (a mount of a missing folder answers 500); the API still works.
            log.warning("%s is missing: pages that import %r will fail; run `npm ci` in %s", folder, package, web_dir)
            continue
        router.mount(f"/vendor/{package}", StaticFiles(directory=folder), name=f"vendor-{package}")
    return router


def mount_web(app: FastAPI, web_dir: Path | None = None, store: "Accounts | None" = None) -> None:
    """Serve the web pages from ``app`` (works with any FastAPI version).

    Args:
        app: The FastAPI app (for Ray Serve, the one given to ``serve.ingress``).
        web_dir, store: As in ``web_router``.
    """
    router = web_router(web_dir, store)
    pages = APIRouter()
    for route in router.routes:
        if isinstance(route, Mount) and isinstance(route.app, StaticFiles):
            app.mount(route.path, route.app, name=route.name)
        else:
            pages.routes.append(route)
    app.include_router(pages)
