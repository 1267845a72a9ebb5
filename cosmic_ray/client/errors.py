"""The client's errors: every answer the API refuses carries its status and the server's message."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base of the client's errors."""


class ApiError(ClientError):
    """The API answered 4xx or 5xx.

    Attributes:
        status: the HTTP status.
        detail: the server's ``detail`` (a message, or FastAPI's list of validation errors).
        retry_after: seconds the server asked to wait (429/503), if it said.
    """

    def __init__(self, status: int, detail: Any, method: str = "", url: str = "", retry_after: float | None = None):
        self.status = status
        self.detail = detail
        self.method = method
        self.url = url
        self.retry_after = retry_after
        super().__init__(f"{method} {url}: {status}: {message_of(detail)}".strip())


class AuthError(ApiError):
    """401 (no, an invalid or an expired token) or 403 (the token's role may not do this)."""


class NotFoundError(ApiError):
    """404: no such object, watchlist..."""


class ValidationError(ApiError):
    """422: the request broke a rule; ``detail`` says which."""


class BusyError(ApiError):
    """429 or 503 still answered after the client's retries."""


def message_of(detail: Any) -> str:
    """A readable line from a ``detail``: FastAPI's validation list becomes ``field: message; ...``."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(x) for x in item.get("loc", ()) if x != "body")
                parts.append(f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", "")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def error_for(status: int, detail: Any, method: str, url: str, retry_after: float | None) -> ApiError:
    """The most specific :class:`ApiError` for ``status``."""
    kind: type[ApiError] = ApiError
    if status in (401, 403):
        kind = AuthError
    elif status == 404:
        kind = NotFoundError
    elif status == 422:
        kind = ValidationError
    elif status in (429, 503):
        kind = BusyError
    return kind(status, detail, method, url, retry_after)
