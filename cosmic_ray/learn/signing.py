"""Model bundles signed by the trainer: an HMAC over every file, checked before anything is read.

Whoever can write to MLflow can rewrite a model's files and any plain hash stored beside them, so
the trainer signs the bundle folder (``weights.pt``, ``arrays.npz``, ``bundle.json``) with a key
that lives outside MLflow: the ``COSMIC_RAY_MODEL_SIGNING_KEY`` environment variable (a Kubernetes
Secret fills it) or, without it, the file ``<COSMIC_RAY_HOME>/model-signing.key``. The signature is
``signature.json`` in the same folder: the SHA-256 of each file and an HMAC-SHA256 of that list.
:func:`verify_bundle` refuses a folder whose list is not signed by the key, or whose files differ
from the list (changed, missing or extra files); only then are the files deserialised, and then
with formats that cannot run code (``torch.load(weights_only=True)``, ``np.load(allow_pickle=False)``,
JSON).

Example:
    >>> key = b"k" * 32
    >>> sign_bundle(folder, key)  # doctest: +SKIP
    >>> verify_bundle(folder, key)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from pathlib import Path
from typing import TypedDict

from cosmic_ray.core.config import Settings
from cosmic_ray.core.errors import UntrustedModelError

log = logging.getLogger(__name__)

SIGNATURE_FILE = "signature.json"
FORMAT = "cosmic-ray-bundle/hmac-sha256/1"
KEY_ENV = "COSMIC_RAY_MODEL_SIGNING_KEY"
MIN_KEY_CHARS = 32
_MAX_SIGNATURE_BYTES = 64 * 1024
_CHUNK = 1 << 20


class Signature(TypedDict):
    """The content of ``signature.json``."""

    format: str
    files: dict[str, str]  # file name -> SHA-256 (hex)
    hmac: str  # HMAC-SHA256 (hex) of the canonical {"format", "files"}


def signing_key(settings: Settings, *, create: bool = False) -> bytes:
    """The model signing key: ``COSMIC_RAY_MODEL_SIGNING_KEY``, else ``settings.model_signing_key_file``.

    Args:
        settings: where the key file lives (under ``COSMIC_RAY_HOME``) and the environment's key.
        create: make a new random key file (mode 0600) when there is no key at all (the trainer
            of a local installation); never done when loading.

    Raises:
        UntrustedModelError: no key (and ``create`` is false), or a key shorter than 32 characters.
    """
    if settings.model_signing_key is not None:
        text = settings.model_signing_key.get_secret_value().strip()
        where = f"${KEY_ENV}"
    else:
        path = settings.model_signing_key_file
        if not path.is_file():
            if not create:
                raise UntrustedModelError(
                    f"no model signing key: set {KEY_ENV} (the Secret the trainer signs with) or put the trainer's "
                    f"key in {path}; cosmic-ray loads no model it cannot verify"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
            log.warning(
                "created a new model signing key at %s: replicas and gates on other machines need the same key "
                "(%s or that file) to load the models signed with it",
                path,
                KEY_ENV,
            )
        text = path.read_text().strip()
        where = str(path)
    if len(text) < MIN_KEY_CHARS:
        raise UntrustedModelError(
            f"the model signing key in {where} has {len(text)} characters, fewer than {MIN_KEY_CHARS}: "
            "use a random one (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return text.encode()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _mac(key: bytes, files: dict[str, str]) -> str:
    message = json.dumps({"format": FORMAT, "files": files}, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _bundle_files(folder: Path) -> dict[str, Path]:
    """The folder's entries other than the signature; anything but a plain file is refused."""
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name == SIGNATURE_FILE:
            continue
        if path.is_symlink() or not path.is_file():
            raise UntrustedModelError(f"model bundle {folder} holds {path.name!r}, which is not a plain file: refused")
        out[path.name] = path
    return out


def sign_bundle(folder: Path | str, key: bytes) -> Path:
    """Write ``signature.json`` for every file of ``folder`` (the trainer, right after saving it).

    Returns:
        The signature file's path.
    """
    folder = Path(folder)
    files = {name: _sha256(path) for name, path in _bundle_files(folder).items()}
    signature = Signature(format=FORMAT, files=files, hmac=_mac(key, files))
    out = folder / SIGNATURE_FILE
    out.write_text(json.dumps(signature, indent=2, sort_keys=True))
    return out


def _read_signature(folder: Path) -> Signature:
    path = folder / SIGNATURE_FILE
    if path.is_symlink() or not path.is_file():
        raise UntrustedModelError(
            f"model bundle {folder} is not signed ({SIGNATURE_FILE} missing): refused; "
            "retrain it (`cosmic-ray train`) so the trainer signs it"
        )
    raw = path.read_bytes()
    if len(raw) > _MAX_SIGNATURE_BYTES:
        raise UntrustedModelError(f"{path} is {len(raw)} bytes, not a signature: refused")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise UntrustedModelError(f"{path} is not valid JSON: refused") from exc
    files = data.get("files") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("format") != FORMAT
        or not isinstance(data.get("hmac"), str)
        or not isinstance(files, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
    ):
        raise UntrustedModelError(f"{path} is not a {FORMAT} signature: refused")
    return Signature(format=FORMAT, files=files, hmac=data["hmac"])


def verify_bundle(folder: Path | str, key: bytes) -> None:
    """Check ``folder`` against its ``signature.json`` before any of its files is deserialised.

    Raises:
        UntrustedModelError: no or malformed signature, a signature made with another key, or files
            that differ from the signed list (changed, missing, added).
    """
    folder = Path(folder)
    signature = _read_signature(folder)
    if not hmac.compare_digest(_mac(key, signature["files"]), signature["hmac"]):
        raise UntrustedModelError(
            f"model bundle {folder}: the signature does not match the signing key (not signed by this "
            f"installation's trainer, or edited after signing): refused"
        )
    present = _bundle_files(folder)
    signed = signature["files"]
    if set(present) != set(signed):
        extra, missing = sorted(set(present) - set(signed)), sorted(set(signed) - set(present))
        raise UntrustedModelError(
            f"model bundle {folder} differs from its signed file list (unsigned: {extra}, missing: {missing}): refused"
        )
    changed = [name for name, path in present.items() if not hmac.compare_digest(_sha256(path), signed[name])]
    if changed:
        raise UntrustedModelError(f"model bundle {folder}: {changed} changed after signing: refused")
