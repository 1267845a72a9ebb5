"""The cutout store beside the lake: ZTF alert stamps, content-addressed, with a retention.

Layout under ``<lake>/_cutouts/`` (the lake's readers skip ``_`` folders)::

    blobs/<aa>/<sha256>.fits        one gunzipped FITS stamp, named by the sha256 of its bytes
    alerts/<object_id>/<candid>.json  one alert: its stamps' digests, position, time, and the
                                    candidate's cross-match fields (PS1, Gaia, solar system)

Written by :meth:`cosmic_ray.ingest.lake.Lake.append_alerts` (through :func:`store_alert_extras`)
whenever a ZTF per-alert table reaches the lake: batch ingest, the mailbox watcher and any stream
that appends ``records_to_tables``' alert rows get it without a call of their own. Each stamp is
gunzipped with a bound (``COSMIC_RAY_CUTOUT_MAX_BYTES``): a larger or corrupt stamp is not kept, and
the reason is recorded in the alert's file; the alert itself is never refused for its stamps.

Files are written under a temporary name and renamed, so a killed writer leaves whole files; the
same stamp stored twice is one blob (its time is refreshed). :meth:`CutoutStore.prune` drops the
alerts stored more than ``COSMIC_RAY_CUTOUT_RETENTION_DAYS`` ago, then the blobs no alert uses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from cosmic_ray.core.config import Settings
from cosmic_ray.sources.bounded import DecompressionLimitError, maybe_gunzip
from cosmic_ray.sources.ztf_stamps import CONTEXT_COLUMN, EXTRA_COLUMNS, KINDS, STAMP_COLUMNS

log = logging.getLogger(__name__)

CUTOUTS_DIR = "_cutouts"
_OBJECT_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_DAY_S = 86400.0


@dataclass(frozen=True)
class StampRef:
    """One stored stamp: the sha256 of its FITS bytes and their size."""

    digest: str
    nbytes: int


@dataclass(frozen=True)
class StoredAlert:
    """What the store keeps of one alert (the file ``alerts/<object_id>/<candid>.json``)."""

    object_id: str
    candid: int
    mjd: float | None
    ra: float | None
    dec: float | None
    stored_at: float  # unix seconds
    stamps: dict[str, StampRef] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # kind -> why the stamp was not kept
    context: dict[str, Any] = field(default_factory=dict)  # the candidate's cross-match fields

    def to_json(self) -> dict[str, Any]:
        return {
            "object_id": self.object_id,
            "candid": self.candid,
            "mjd": self.mjd,
            "ra": self.ra,
            "dec": self.dec,
            "stored_at": self.stored_at,
            "stamps": {k: {"digest": s.digest, "bytes": s.nbytes} for k, s in self.stamps.items()},
            "refused": self.refused,
            "context": self.context,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StoredAlert:
        stamps = {
            k: StampRef(str(v["digest"]), int(v["bytes"]))
            for k, v in (raw.get("stamps") or {}).items()
            if k in KINDS and _DIGEST.match(str(v.get("digest", "")))
        }
        return cls(
            object_id=str(raw["object_id"]),
            candid=int(raw["candid"]),
            mjd=raw.get("mjd"),
            ra=raw.get("ra"),
            dec=raw.get("dec"),
            stored_at=float(raw.get("stored_at", 0.0)),
            stamps=stamps,
            refused={str(k): str(v) for k, v in (raw.get("refused") or {}).items()},
            context=dict(raw.get("context") or {}),
        )


@dataclass(frozen=True)
class StoreSummary:
    """What one :meth:`CutoutStore.put_table` call kept."""

    alerts: int = 0
    stamps: int = 0
    new_blobs: int = 0
    refused: int = 0


@dataclass(frozen=True)
class PruneSummary:
    """What :meth:`CutoutStore.prune` removed (the JSON line ``cosmic-ray cutouts prune`` prints)."""

    alerts_removed: int
    blobs_removed: int
    bytes_freed: int
    alerts_kept: int
    retention_days: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value == value else None


class CutoutStore:
    """The stamps of the lake at ``lake_root`` (``<lake_root>/_cutouts``)."""

    def __init__(self, lake_root: Path | str, max_bytes: int | None = None):
        self.root = Path(lake_root) / CUTOUTS_DIR
        self._max_bytes = max_bytes

    @property
    def max_bytes(self) -> int:
        return self._max_bytes if self._max_bytes is not None else Settings().cutout_max_bytes

    # ------------------------------------------------------------------ writing
    def blob_path(self, digest: str) -> Path:
        if not _DIGEST.match(digest):
            raise ValueError(f"{digest!r} is not a sha256 digest")
        return self.root / "blobs" / digest[:2] / f"{digest}.fits"

    def _alert_path(self, object_id: str, candid: int) -> Path:
        return self.root / "alerts" / object_id / f"{candid}.json"

    def put_blob(self, data: bytes) -> tuple[StampRef, bool]:
        """Store FITS bytes under their digest; returns the reference and whether the blob is new."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if path.exists():
            os.utime(path)  # in use again: the retention counts from now
            return StampRef(digest, len(data)), False
        _write_atomic(path, data)
        return StampRef(digest, len(data)), True

    def put_table(self, table: pa.Table, now: float | None = None) -> StoreSummary:
        """Store the stamps and cross-match fields of a per-alert table (:mod:`cosmic_ray.sources.ztf_stamps` columns)."""
        if table.num_rows == 0 or STAMP_COLUMNS["science"] not in table.column_names:
            return StoreSummary()
        stored_at = time.time() if now is None else now
        bound = self.max_bytes
        cols = {
            name: table.column(name).to_pylist()
            for name in ("object_id", "alert_candid", "mjd", "ra", "dec", *EXTRA_COLUMNS)
        }
        alerts = stamps = new = refused_n = 0
        for i, object_id in enumerate(cols["object_id"]):
            if not isinstance(object_id, str) or not _OBJECT_ID.match(object_id) or ".." in object_id:
                log.warning("cutouts: object id %r is not a plain name: its stamps are not kept", object_id)
                continue
            refs: dict[str, StampRef] = {}
            refused: dict[str, str] = {}
            for kind in KINDS:
                packed = cols[STAMP_COLUMNS[kind]][i]
                if not packed:
                    continue
                try:
                    fits_bytes = maybe_gunzip(packed, f"{kind} stamp", bound)
                except DecompressionLimitError as exc:
                    refused[kind] = str(exc).replace("COSMIC_RAY_MAX_DECOMPRESSED_BYTES", "COSMIC_RAY_CUTOUT_MAX_BYTES")
                    continue
                except OSError as exc:
                    refused[kind] = f"{kind} stamp is not readable gzip: {exc}"
                    continue
                if len(fits_bytes) > bound:  # stored uncompressed in the packet
                    refused[kind] = f"{kind} stamp holds {len(fits_bytes)} bytes, over COSMIC_RAY_CUTOUT_MAX_BYTES={bound}"
                    continue
                if not fits_bytes.startswith(b"SIMPLE"):
                    refused[kind] = f"{kind} stamp is not a FITS file"
                    continue
                refs[kind], fresh = self.put_blob(fits_bytes)
                new += int(fresh)
            for kind, reason in refused.items():
                log.warning("cutouts: %s alert %s: %s (not kept)", object_id, cols["alert_candid"][i], reason)
            try:
                context = json.loads(cols[CONTEXT_COLUMN][i] or "{}")
            except ValueError:
                context = {}
            alert = StoredAlert(
                object_id=object_id,
                candid=int(cols["alert_candid"][i]),
                mjd=_float(cols["mjd"][i]),
                ra=_float(cols["ra"][i]),
                dec=_float(cols["dec"][i]),
                stored_at=stored_at,
                stamps=refs,
                refused=refused,
                context=context,
            )
            _write_atomic(self._alert_path(object_id, alert.candid), json.dumps(alert.to_json()).encode())
            alerts += 1
            stamps += len(refs)
            refused_n += len(refused)
        return StoreSummary(alerts, stamps, new, refused_n)

    # ------------------------------------------------------------------ reading
    def alerts(self, object_id: str) -> list[StoredAlert]:
        """The object's stored alerts, oldest first (by time, then candid); [] if none or not a plain id."""
        if not _OBJECT_ID.match(object_id) or ".." in object_id:
            return []
        folder = self.root / "alerts" / object_id
        if not folder.is_dir():
            return []
        out = []
        for path in folder.glob("*.json"):
            try:
                out.append(StoredAlert.from_json(json.loads(path.read_text())))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("cutouts: unreadable %s: %s", path, exc)
        return sorted(out, key=lambda a: (a.mjd if a.mjd is not None else -1.0, a.candid))

    def alert(self, object_id: str, candid: int | None = None) -> StoredAlert | None:
        """One stored alert of the object: ``candid``, or by default its latest alert with stamps."""
        found = self.alerts(object_id)
        if candid is not None:
            return next((a for a in found if a.candid == candid), None)
        with_stamps = [a for a in found if a.stamps]
        return with_stamps[-1] if with_stamps else None

    def read_blob(self, ref: StampRef) -> bytes:
        """The FITS bytes of a stored stamp. Raises: FileNotFoundError: pruned meanwhile."""
        return self.blob_path(ref.digest).read_bytes()

    # ------------------------------------------------------------------ retention
    def prune(self, retention_days: float | None = None, now: float | None = None) -> PruneSummary:
        """Drop alerts stored more than ``retention_days`` ago, then every blob no kept alert uses.

        A blob is removed only once it is also older than the cutoff, so one a writer has just
        stored (its alert file not written yet) stays.
        """
        days = Settings().cutout_retention_days if retention_days is None else retention_days
        cutoff = (time.time() if now is None else now) - days * _DAY_S
        removed = kept = 0
        used: set[str] = set()
        alerts_dir = self.root / "alerts"
        for folder in sorted(alerts_dir.iterdir()) if alerts_dir.is_dir() else []:
            for path in folder.glob("*.json"):
                try:
                    alert = StoredAlert.from_json(json.loads(path.read_text()))
                except (OSError, ValueError, KeyError, TypeError):
                    alert = None
                if alert is None or alert.stored_at < cutoff:
                    path.unlink(missing_ok=True)
                    removed += 1
                else:
                    kept += 1
                    used.update(ref.digest for ref in alert.stamps.values())
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        blobs = freed = 0
        blob_dir = self.root / "blobs"
        for path in blob_dir.glob("*/*.fits") if blob_dir.is_dir() else []:
            info = path.stat()
            if path.stem not in used and info.st_mtime < cutoff:
                path.unlink(missing_ok=True)
                blobs += 1
                freed += info.st_size
        summary = PruneSummary(removed, blobs, freed, kept, days)
        log.info("cutouts prune: %s", summary)
        return summary


def store_alert_extras(lake_root: Path | str, table: pa.Table) -> pa.Table:
    """Keep the stamps and cross-match fields of a per-alert table in the cutout store; the table without them.

    The hook of :meth:`cosmic_ray.ingest.lake.Lake.append_alerts` (a table without those columns
    passes through unchanged). A failure to store stamps is logged, never raised: the alert rows
    still reach the lake.
    """
    extra = [c for c in EXTRA_COLUMNS if c in table.column_names]
    if not extra:
        return table
    try:
        summary = CutoutStore(lake_root).put_table(table)
        log.debug("cutouts: %s", summary)
    except OSError as exc:
        log.warning("cutouts: stamps of %d alerts not kept: %s", table.num_rows, exc)
    return table.drop_columns(extra)
