"""Security headers on every HTTP answer: a Content-Security-Policy, ``nosniff``, a Referrer-Policy.

The policy allows scripts, styles, fetches and fonts from the API's own origin only; the pages'
inline import maps by their SHA-256 (computed from the HTML files when the app is built, see
:func:`inline_script_hashes`), pictures from the own origin, ``data:`` URLs (the pages' empty
favicon, Swagger UI's icons) and the origins the Astronomy Picture of the Day is served from.
No plugins (``object-src 'none'``), no framing (``frame-ancestors 'none'``), no ``<base>``.

Example:
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> policy = content_security_policy(["sha256-abc="], ["https://apod.nasa.gov"])
    >>> app.add_middleware(SecurityHeaders, csp=policy)
    >>> policy.split("; ")[0]
    "default-src 'self'"
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where a link may send the page's address: nowhere (the APOD and dashboard links open other origins).
REFERRER_POLICY = "no-referrer"


def content_security_policy(script_hashes: Iterable[str] = (), image_origins: Iterable[str] = ()) -> str:
    """The policy: own origin only, inline scripts by hash, images also from ``image_origins``.

    Args:
        script_hashes: CSP hash sources without quotes (``sha256-<base64>``) of the allowed inline scripts.
        image_origins: Origins (``https://host``) pictures may come from besides the own one.

    Returns:
        The ``Content-Security-Policy`` header value.
    """
    scripts = " ".join(["'self'", *(f"'{h}'" for h in sorted(set(script_hashes)))])
    images = " ".join(["'self'", "data:", *sorted(set(image_origins))])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {scripts}",
            "style-src 'self'",
            f"img-src {images}",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class _InlineScripts(HTMLParser):
    """Collects the text of every ``<script>`` without a ``src`` (import maps, inline code)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts: list[str] = []
        self._current: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and not any(name == "src" for name, _ in attrs):
            self._current = []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._current is not None:
            self.scripts.append("".join(self._current))
            self._current = None


def inline_script_hashes(html_files: Iterable[Path]) -> list[str]:
    """CSP hash sources (``sha256-<base64>``) of the inline scripts of ``html_files``, as browsers hash them.

    The hash covers the exact text between ``<script ...>`` and ``</script>``, white space included,
    so a page edited after startup needs a restart (its import map is refused until then).
    """
    hashes = []
    for path in html_files:
        parser = _InlineScripts()
        parser.feed(path.read_text(encoding="utf-8"))
        for text in parser.scripts:
            digest = hashlib.sha256(text.encode("utf-8")).digest()
            hashes.append("sha256-" + base64.b64encode(digest).decode("ascii"))
    return hashes


class SecurityHeaders:
    """ASGI middleware: the CSP, ``X-Content-Type-Options: nosniff``, the Referrer-Policy and
    ``X-Frame-Options: DENY`` (for browsers without ``frame-ancestors``) on every HTTP answer,
    errors included; a header the route set itself is kept."""

    def __init__(self, app: ASGIApp, csp: str):
        self.app = app
        self.headers: list[tuple[bytes, bytes]] = [
            (b"content-security-policy", csp.encode("latin-1")),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", REFERRER_POLICY.encode("latin-1")),
            (b"x-frame-options", b"DENY"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in self.headers if name not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
