"""One request with bounded retries: 429 and 503 are sent again after the server's ``Retry-After``.

Example:
    >>> retry_after_seconds("2")
    2.0
    >>> retry_after_seconds(None) is None
    True
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from cosmic_ray.client.errors import error_for

log = logging.getLogger(__name__)

#: Statuses that mean "busy, try again": sent again after ``Retry-After``.
RETRY_STATUSES = frozenset({429, 503})


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date (seconds from now); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def detail_of(response: httpx.Response) -> Any:
    """The server's ``detail`` (JSON error body), else its text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:2000] or response.reason_phrase
    return body.get("detail", body) if isinstance(body, dict) else body


def send(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    retries: int,
    max_wait: float,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request; on 429/503 wait (``Retry-After``, else an exponential backoff) and send it again.

    Args:
        retries: most extra attempts after the first.
        max_wait: the longest wait before one attempt (a longer ``Retry-After`` is cut to it).

    Raises:
        ApiError: a 4xx/5xx answer (after the retries for 429/503), with the server's message.
        httpx.TransportError: the server could not be reached.
    """
    attempt = 0
    while True:
        response = http.request(method, url, **kwargs)
        if response.status_code < 400:
            return response
        wait = retry_after_seconds(response.headers.get("retry-after"))
        if response.status_code in RETRY_STATUSES and attempt < retries:
            delay = min(max_wait, wait if wait is not None else backoff * 2**attempt)
            log.info(
                "%s %s answered %d: retry %d/%d in %.1f s",
                method,
                url,
                response.status_code,
                attempt + 1,
                retries,
                delay,
            )
            sleep(delay)
            attempt += 1
            continue
        raise error_for(response.status_code, detail_of(response), method, str(response.request.url), wait)
