"""Webhook URLs at rest: encrypted with Fernet (AES-128-CBC + HMAC-SHA256), shown masked.

A webhook URL is a secret (a Slack or Discord hook URL is its own credential), so the event store
keeps only its ciphertext and a masked form (``https://hooks.example.org/…``). The key follows the
pattern of the model signing key (:mod:`cosmic_ray.learn.signing`): ``COSMIC_RAY_WEBHOOK_KEY``
(a Fernet key; a Kubernetes Secret fills it) or, without it, ``<COSMIC_RAY_HOME>/webhook.key``
(mode 0600, made on first use).

Example:
    >>> box = SecretBox(Fernet.generate_key())
    >>> box.decrypt(box.encrypt("https://hooks.example.org/T0/B0/x")) == "https://hooks.example.org/T0/B0/x"
    True
    >>> mask_url("https://hooks.example.org/T0/B0/x")
    'https://hooks.example.org/…'
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken

from cosmic_ray.core.config import Settings
from cosmic_ray.core.errors import ConfigError

log = logging.getLogger(__name__)

KEY_ENV = "COSMIC_RAY_WEBHOOK_KEY"
KEY_FILE = "webhook.key"
_LOCK = threading.Lock()


def mask_url(url: str) -> str:
    """``scheme://host[:port]/…``: what a webhook URL may show (no user, path or query)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


class SecretBox:
    """Encrypts and decrypts short secrets with one Fernet key."""

    def __init__(self, key: bytes):
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"the webhook key is not a Fernet key (32 url-safe base64 bytes): make one with "
                f"`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'` ({exc})"
            ) from None

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt(self, token: str) -> str:
        """Raises: ConfigError: the ciphertext was made with another key."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ConfigError(f"a stored webhook URL cannot be decrypted with this key (${KEY_ENV} changed?)") from None


def webhook_key(settings: Settings) -> bytes:
    """``COSMIC_RAY_WEBHOOK_KEY``, else the key file under home (made, mode 0600, when missing)."""
    if settings.webhook_key is not None:
        return settings.webhook_key.get_secret_value().strip().encode()
    path: Path = settings.home_dir / KEY_FILE
    try:
        return _key_file(path)
    except OSError as exc:
        raise ConfigError(
            f"no webhook key: set {KEY_ENV} (a Fernet key) or let this process write {path} ({exc.strerror})"
        ) from None


def _key_file(path: Path) -> bytes:
    with _LOCK:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it a moment ago
                pass
            else:
                with os.fdopen(fd, "wb") as out:
                    out.write(Fernet.generate_key() + b"\n")
                log.warning(
                    "created a new webhook encryption key at %s: every process that delivers webhooks needs it (or %s)",
                    path,
                    KEY_ENV,
                )
    return path.read_bytes().strip()


class LazySecretBox(SecretBox):
    """A :class:`SecretBox` whose key is read (or made) on first use: a process that never meets a
    webhook URL (no subscriptions) never touches the key."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._box: SecretBox | None = None

    def _real(self) -> SecretBox:
        if self._box is None:
            self._box = SecretBox(webhook_key(self._settings))
        return self._box

    def encrypt(self, text: str) -> str:
        return self._real().encrypt(text)

    def decrypt(self, token: str) -> str:
        return self._real().decrypt(token)


def secret_box(settings: Settings) -> SecretBox:
    """The box of this installation's webhook key (read or made when first needed)."""
    return LazySecretBox(settings)
