"""Quarantine: bad inputs are kept, with the reason, never silently dropped."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, limit: int = 80) -> str:
    """A file-name-safe rendering of ``name`` (no separators, no ``..``): user text never picks a path."""
    base = _SAFE.sub("_", name.replace("\\", "/").split("/")[-1]).strip("._") or "input"
    return base[:limit]


def quarantine(folder: Path | str, name: str, reason: str, data: bytes | None = None, run_id: str = "") -> Path:
    """Store one bad input (its bytes if given) and a ``.reason.json`` beside it; returns the reason file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # a file name may carry bytes that are not UTF-8 (surrogate escapes): never an error here
    digest = hashlib.sha1(f"{name}\0{reason}".encode("utf-8", "surrogateescape")).hexdigest()[:12]
    stem = f"{run_id + '-' if run_id else ''}{safe_name(name)}-{digest}"
    if data is not None:
        (folder / f"{stem}.bin").write_bytes(data)
    reason_file = folder / f"{stem}.reason.json"
    reason_file.write_text(json.dumps({"input": name, "reason": reason, "time": time.time(), "run": run_id}))
    return reason_file


def count(folder: Path | str, run_id: str) -> int:
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    return sum(1 for _ in folder.glob(f"{run_id}-*.reason.json"))


def reasons(folder: Path | str) -> list[dict]:
    folder = Path(folder)
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.reason.json"))] if folder.is_dir() else []
