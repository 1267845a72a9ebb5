"""``/docs``: Swagger UI served from the installed ``fastapi-offline`` package, not from a CDN.

FastAPI's own ``/docs`` page loads Swagger UI from a CDN at a floating version with no integrity
check and starts it from an inline script; ``/redoc`` does the same. Here the app is built with
both turned off (``docs_url=None, redoc_url=None``) and :func:`mount_docs` serves:

- ``/docs``: a page with no inline script (so the strict Content-Security-Policy holds there too),
- ``/docs/init.js``: the script that starts Swagger UI on ``openapi.json``,
- ``/docs/assets/...``: the Swagger UI files the package ships (Swagger UI 5, which reads the
  OpenAPI 3.1 FastAPI writes; the release is fixed by the package version pinned in pyproject.toml).

Only the package's static files are used, not its ``FastAPIOffline`` (which starts Swagger UI from
an inline script). ReDoc stays off: it injects ``<style>`` elements, which ``style-src 'self'`` refuses.

Every URL is relative, so the page works under a path prefix.

Example:
    >>> from fastapi import FastAPI
    >>> app = FastAPI(docs_url=None, redoc_url=None)
    >>> mount_docs(app)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

#: The Swagger UI files the package ships (``swagger-ui-bundle.js``, ``swagger-ui.css``).
SWAGGER_UI_DIR = Path(str(resources.files("fastapi_offline") / "static"))

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} - API docs</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script src="docs/init.js"></script>
</body>
</html>
"""

_INIT_JS = """// Starts Swagger UI on the app's OpenAPI schema (a relative URL: works under a prefix).
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  validatorUrl: null, // else a badge image from validator.swagger.io (another origin)
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
"""

_NO_CACHE = {"Cache-Control": "no-cache"}


def docs_page(title: str) -> str:
    """The ``/docs`` HTML: the packaged Swagger UI and :data:`_INIT_JS`, no inline script."""
    return _PAGE.format(title=title.replace("&", "&amp;").replace("<", "&lt;"))


def mount_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` from the installed package (build ``app`` with ``docs_url=None``).

    Raises:
        FileNotFoundError: the package's Swagger UI files are missing (a broken install).
    """
    if not (SWAGGER_UI_DIR / "swagger-ui-bundle.js").is_file():
        raise FileNotFoundError(f"Swagger UI not found in {SWAGGER_UI_DIR}: reinstall fastapi-offline")
    page = docs_page(app.title)

    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers=_NO_CACHE)

    async def init_js() -> Response:
        return Response(_INIT_JS, media_type="text/javascript", headers=_NO_CACHE)

    app.add_api_route("/docs/init.js", init_js, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_UI_DIR), name="swagger-ui")
