"""The API's ASGI middleware: 413 for request bodies over the limit, and request metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse

from cosmic_ray.core.config import Settings
from cosmic_ray.serve import metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_LIMITS: dict[str, int] = {}  # this process's body limit, set by the ingress from its settings


def set_body_limit(max_body_bytes: int) -> None:
    """The request body limit of this process (the ingress sets it from its settings)."""
    _LIMITS["max_body_bytes"] = max_body_bytes


def body_limit() -> int:
    """This process's body limit: as set, else that of ``Settings()``."""
    if "max_body_bytes" not in _LIMITS:
        _LIMITS["max_body_bytes"] = Settings().max_body_bytes
    return _LIMITS["max_body_bytes"]


class _BodyTooLarge(Exception):
    pass


class ObserveAndLimit:
    """ASGI middleware: 413 for bodies over the limit (declared or streamed), request metrics."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        limit = body_limit()
        status = [500]

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        length = dict(scope["headers"]).get(b"content-length")
        try:
            if length is not None and length.isdigit() and int(length) > limit:
                too_big = JSONResponse(
                    status_code=413,
                    content={"detail": f"request body of {int(length)} bytes exceeds the limit of {limit}"},
                )
                return await too_big(scope, receive, send_observed)
            if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
                # A streamed (chunked) body: read it here up to the limit, answer 413 past it, else
                # replay it to the app (raising inside the app's body parsing would become a 400).
                try:
                    receive = await _buffered_receive(receive, limit)
                except _BodyTooLarge:
                    too_big = JSONResponse(
                        status_code=413, content={"detail": f"request body exceeds the limit of {limit} bytes"}
                    )
                    return await too_big(scope, receive, send_observed)
            await self.app(scope, receive, send_observed)
        finally:
            route = scope.get("route")
            metrics.observe(
                getattr(route, "path", "unmatched"), scope["method"], status[0], time.perf_counter() - start
            )


async def _buffered_receive(receive: Receive, limit: int) -> Receive:
    """Read a streamed request body (at most ``limit`` bytes) and return a receive that replays it.

    Raises:
        _BodyTooLarge: the body is longer than ``limit``.
    """
    messages, seen = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        seen += len(message.get("body", b""))
        if seen > limit:
            raise _BodyTooLarge()
        if not message.get("more_body", False):
            break
    replay = iter(messages)

    async def replayed() -> Message:
        return next(replay, None) or await receive()

    return replayed
