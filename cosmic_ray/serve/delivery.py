"""The deliverer: drains the outbox to the webhooks, at least once, never again after a 2xx.

Each due row (:meth:`cosmic_ray.serve.subscriptions.Outbox.claim`, leased so two deliverers never
send it at once) is POSTed as JSON with ``Idempotency-Key: <subscription>:<item>`` (a candid, or
``digest-<night>``), so a receiver can drop a repeat after a lost answer. The body is
Slack-compatible (a ``text`` line) and carries the structured fields beside it. A 2xx marks the
row delivered; anything else (an error status, a timeout, a refused target) schedules a retry
after ``backoff * 2**attempts`` (at most an hour) until ``max_attempts``, then the row stays in the
outbox as ``dead``. Redirects are not followed (a 3xx is a failure). Before every POST the
target is resolved and checked again (:mod:`cosmic_ray.serve.egress`) and the connection goes to
the address checked, so DNS rebinding cannot turn a public hook into a private one.

The outbox is in the event store: a deliverer started later (a restart, another process) resumes
what is pending. It runs as a background thread of the live path (``cosmic-ray watch --classify``:
:func:`start_background`) or on its own (``cosmic-ray notify run``; ``--once`` for cron and tests).
Webhook URLs are never logged: only the masked form (``https://host/…``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from cosmic_ray.core.config import Settings
from cosmic_ray.core.errors import ConfigError
from cosmic_ray.serve.db import open_engine
from cosmic_ray.serve.egress import EgressRefused, Target, resolve_target
from cosmic_ray.serve.redact import strip_credentials
from cosmic_ray.serve.secretbox import SecretBox, mask_url, secret_box
from cosmic_ray.serve.subscriptions import Due, Outbox

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=1)


class MaskUrls(logging.Filter):
    """Masks the URLs in httpx's own request log (``HTTP Request: POST <url> ...``): a webhook URL is a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                mask_url(str(a)) if isinstance(a, httpx.URL) or (isinstance(a, str) and "://" in a) else a
                for a in record.args
            )
        if isinstance(record.msg, str) and "://" in record.msg:
            record.msg = strip_credentials(record.msg)
        return True


def mask_httpx_logs() -> None:
    """Install :class:`MaskUrls` on the ``httpx`` logger (once per process; called by each deliverer)."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, MaskUrls) for f in logger.filters):
        logger.addFilter(MaskUrls())


@dataclass
class DrainStats:
    """What one drain did."""

    attempted: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"attempted": self.attempted, "delivered": self.delivered, "failed": self.failed, "dead": self.dead}


def slack_text(payload: dict[str, Any]) -> str:
    """One line a chat channel shows."""
    if "objects" in payload:  # a digest
        lines = [
            f"• {o['object_id']}: {o['class']} open-set {o['open_set_score']:.2f} (candid {o['candid']})"
            for o in payload["objects"]
        ]
        return f"cosmic_ray: the {len(lines)} most anomalous new objects of night {payload['night']}\n" + "\n".join(
            lines
        )
    return f"cosmic_ray: {payload.get('object_id')} (candid {payload.get('candid')}): {payload.get('reason')}"


def body(subscription_id: int, item_key: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The JSON a webhook receives: Slack's ``text`` plus the structured fields."""
    return {"text": slack_text(payload), "subscription": subscription_id, "item": item_key, **payload}


def pinned_request(target: Target, key: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL (host replaced by the checked address), headers and httpx extensions of one POST."""
    parts = urlsplit(target.url)
    address = f"[{target.address}]" if ":" in target.address else target.address
    netloc = f"{address}:{parts.port}" if parts.port else address
    url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = f"{target.host}:{parts.port}" if parts.port else target.host
    headers = {"Host": host_header, "Idempotency-Key": key, "User-Agent": "cosmic-ray-webhook/1"}
    extensions = {"sni_hostname": target.host} if parts.scheme == "https" else {}
    return url, headers, extensions


class Deliverer:
    """Sends due outbox rows. One per process; :meth:`drain` may be called from any thread.

    Args:
        outbox: the store's outbox.
        box: decrypts the webhook URLs.
        allow: hosts/addresses/CIDRs allowed although not public (``COSMIC_RAY_WEBHOOK_ALLOW``).
        timeout_s: per POST.
        max_attempts: failures before a row is kept as dead.
        backoff_s: the first retry delay (doubled per attempt, at most an hour).
    """

    def __init__(
        self,
        outbox: Outbox,
        box: SecretBox,
        allow: list[str] | tuple[str, ...] = (),
        timeout_s: float = 5.0,
        max_attempts: int = 12,
        backoff_s: float = 5.0,
    ):
        self.outbox = outbox
        self.box = box
        self.allow = tuple(allow)
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.client = httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False)
        mask_httpx_logs()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings, outbox: Outbox | None = None) -> Deliverer:
        """A deliverer over the settings' event store, key and allow-list."""
        return cls(
            outbox or Outbox(open_engine(settings.event_store_url)),
            secret_box(settings),
            settings.webhook_allow,
            settings.webhook_timeout_s,
            settings.webhook_max_attempts,
            settings.webhook_backoff_s,
        )

    def retry_delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failure (1-based)."""
        return min(MAX_BACKOFF, timedelta(seconds=self.backoff_s * 2 ** max(0, attempts - 1)))

    def send(self, due: Due) -> None:
        """POST one row.

        Raises:
            EgressRefused: the target is not allowed now.
            httpx.HTTPError: no 2xx (an error status, a redirect, a timeout, no connection).
            ConfigError: the URL cannot be decrypted.
        """
        url = self.box.decrypt(due.url_encrypted)
        target = resolve_target(url, self.allow)
        post_url, headers, extensions = pinned_request(target, due.idempotency_key)
        answer = self.client.post(
            post_url,
            json=body(due.subscription_id, due.item_key, due.payload),
            headers=headers,
            extensions=extensions,
        )
        if not 200 <= answer.status_code < 300:
            raise httpx.HTTPStatusError(f"HTTP {answer.status_code}", request=answer.request, response=answer)

    def drain(self, limit: int = 100) -> DrainStats:
        """Attempt every row due now (at most ``limit``); never raises for a failing receiver."""
        stats = DrainStats()
        for due in self.outbox.claim(limit):
            stats.attempted += 1
            try:
                self.send(due)
            except (httpx.HTTPError, EgressRefused, ConfigError) as exc:
                # the exception text of httpx names the URL it tried (the pinned address, not the path's
                # secret, but keep logs to the class and status only)
                reason = _reason(exc)
                attempts = due.attempts + 1
                if attempts >= self.max_attempts:
                    self.outbox.failed(due.id, reason, None)
                    stats.dead += 1
                    log.warning("notification %s dead after %d attempts: %s", due.idempotency_key, attempts, reason)
                else:
                    self.outbox.failed(due.id, reason, self.retry_delay(attempts))
                    stats.failed += 1
                    log.info("notification %s failed (attempt %d): %s", due.idempotency_key, attempts, reason)
                stats.errors.append(reason)
                continue
            self.outbox.delivered(due.id)
            stats.delivered += 1
        return stats

    # --------------------------------------------------------------- background thread
    def start(self, poll_s: float = 1.0) -> threading.Thread:
        """Drain in a daemon thread until :meth:`stop` (what the live path's process runs)."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.drain()
                except Exception:  # noqa: BLE001 - a store hiccup must not end the thread
                    log.exception("webhook deliverer: drain failed; trying again")
                self._wake.wait(poll_s)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="webhook-deliverer", daemon=True)
        self._thread.start()
        return self._thread

    def wake(self) -> None:
        """Drain now (the live path calls it after enqueueing)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.client.close()


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, EgressRefused | ConfigError):
        return str(exc)
    return type(exc).__name__


def run(settings: Settings, once: bool = False, poll_s: float = 2.0, stop: threading.Event | None = None) -> DrainStats:
    """``cosmic-ray notify run``: drain the outbox (``once``: what is due now, then return; else until ``stop``
    or Ctrl-C). Returns the totals."""
    deliverer = Deliverer.from_settings(settings)
    total = DrainStats()
    stop = stop or threading.Event()
    try:
        while True:
            stats = deliverer.drain()
            for name in ("attempted", "delivered", "failed", "dead"):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
            if once and stats.attempted == 0:
                break
            if not once and stop.wait(poll_s if stats.attempted == 0 else 0):
                break
    except KeyboardInterrupt:
        log.info("notify: stopped")
    finally:
        deliverer.client.close()
    return total
