"""The cutout store beside the lake: ZTF alert stamps, content-addressed, with a retention.

Layout under ``<lake>/_cutouts/`` (the lake's readers skip ``_`` folders)::

    blobs/<aa>/<sha256>.fits.gz     one stamp as the packet carries it (gzipped FITS), named by
                                    the sha256 of those bytes (``.fits`` if it came uncompressed)
    alerts/<object_id>/<candid>.json  one alert: its stamps' digests, position, time, and the
                                    candidate's cross-match fields (PS1, Gaia, solar system)

Written by :meth:`cosmic_ray.ingest.lake.Lake.append_alerts` (through :func:`store_alert_extras`)
whenever a ZTF per-alert table reaches the lake: batch ingest, the mailbox watcher and any stream
that appends ``records_to_tables``' alert rows get it without a call of their own.

Size bound (``COSMIC_RAY_CUTOUT_MAX_BYTES``): a stamp whose gzip trailer declares more than the
bound, or that is not gzip nor FITS, is not kept at ingest (the reason is recorded in the alert's
file; the alert itself is never refused for its stamps); the stamp is gunzipped only when read
(:meth:`CutoutStore.read_fits`), with the same bound, so a stamp that lies about its size is
refused there. Gunzipping at ingest would cost ~0.3 ms per stamp on the driver, a third of the
ingest rate (bench/ingest_bench.py).

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
from cosmic_ray.sources.bounded import GZIP_MAGIC, gunzip
from cosmic_ray.sources.ztf_stamps import CONTEXT_COLUMN, EXTRA_COLUMNS, KINDS, STAMP_COLUMNS

log = logging.getLogger(__name__)

CUTOUTS_DIR = "_cutouts"
_OBJECT_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_DAY_S = 86400.0


@dataclass(frozen=True)
class StampRef:
    """One stored stamp: the sha256 of its stored bytes, their size, and whether they are gzipped."""

    digest: str
    nbytes: int
    gzipped: bool = True


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
            "stamps": {k: {"digest": s.digest, "bytes": s.nbytes, "gz": s.gzipped} for k, s in self.stamps.items()},
            "refused": self.refused,
            "context": self.context,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StoredAlert:
        stamps = {
            k: StampRef(str(v["digest"]), int(v["bytes"]), bool(v.get("gz", True)))
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
    """Write under a temporary name and rename (the folder is made on first use)."""
    tmp = f"{path.parent}/.{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        handle = open(tmp, "wb")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(tmp, "wb")
    with handle:
        handle.write(data)
    os.replace(tmp, path)


def _remove_if_empty(folder: Path) -> None:
    """Remove an empty folder; one a writer has just written into stays (its writes make it again if needed)."""
    try:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    except OSError:
        pass


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
    def blob_path(self, ref: StampRef) -> Path:
        if not _DIGEST.match(ref.digest):
            raise ValueError(f"{ref.digest!r} is not a sha256 digest")
        return self.root / "blobs" / ref.digest[:2] / f"{ref.digest}{'.fits.gz' if ref.gzipped else '.fits'}"

    def _alert_path(self, object_id: str, candid: int) -> Path:
        return self.root / "alerts" / object_id / f"{candid}.json"

    def put_blob(self, data: bytes) -> tuple[StampRef, bool]:
        """Store stamp bytes (gzipped or plain FITS) under their digest; the reference, and whether the blob is new."""
        ref = StampRef(hashlib.sha256(data).hexdigest(), len(data), data[:2] == GZIP_MAGIC)
        path = self.blob_path(ref)
        try:
            os.utime(path)  # stored already: in use again, the retention counts from now
            return ref, False
        except FileNotFoundError:
            _write_atomic(path, data)
            return ref, True

    def check_stamp(self, data: bytes, kind: str, bound: int) -> str | None:
        """Why a stamp is not kept (None: it is): the size its gzip trailer declares, or not FITS at all."""
        if data[:2] == GZIP_MAGIC:
            declared = int.from_bytes(data[-4:], "little") if len(data) >= 18 else 0
            if declared > bound:
                return f"{kind} stamp declares {declared} bytes, over COSMIC_RAY_CUTOUT_MAX_BYTES={bound}"
            return None
        if not data.startswith(b"SIMPLE"):
            return f"{kind} stamp is neither gzip nor FITS"
        if len(data) > bound:
            return f"{kind} stamp holds {len(data)} bytes, over COSMIC_RAY_CUTOUT_MAX_BYTES={bound}"
        return None

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
                why = self.check_stamp(packed, kind, bound)
                if why is not None:
                    refused[kind] = why
                    log.warning("cutouts: %s alert %s: %s (not kept)", object_id, cols["alert_candid"][i], why)
                    continue
                refs[kind], fresh = self.put_blob(packed)
                new += int(fresh)
            head = StoredAlert(
                object_id=object_id,
                candid=int(cols["alert_candid"][i]),
                mjd=_float(cols["mjd"][i]),
                ra=_float(cols["ra"][i]),
                dec=_float(cols["dec"][i]),
                stored_at=stored_at,
                stamps=refs,
                refused=refused,
            ).to_json()
            del head["context"]
            context = cols[CONTEXT_COLUMN][i] or "{}"  # a JSON object already (ztf_stamps.with_stamps)
            text = json.dumps(head)[:-1] + f', "context": {context}}}'
            _write_atomic(self._alert_path(object_id, head["candid"]), text.encode())
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

    def read_fits(self, ref: StampRef) -> bytes:
        """The FITS bytes of a stored stamp, gunzipped within ``COSMIC_RAY_CUTOUT_MAX_BYTES``.

        Raises:
            FileNotFoundError: pruned meanwhile.
            DecompressionLimitError: it inflates beyond the bound.
            OSError: not readable gzip.
        """
        data = self.blob_path(ref).read_bytes()
        return gunzip(data, "stamp", self.max_bytes) if ref.gzipped else data

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
            _remove_if_empty(folder)
        blobs = freed = 0
        blob_dir = self.root / "blobs"
        for path in blob_dir.glob("*/*.fits*") if blob_dir.is_dir() else []:
            info = path.stat()
            if path.name.split(".", 1)[0] not in used and info.st_mtime < cutoff:
                path.unlink(missing_ok=True)
                blobs += 1
                freed += info.st_size
        for folder in blob_dir.iterdir() if blob_dir.is_dir() else []:
            _remove_if_empty(folder)
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
