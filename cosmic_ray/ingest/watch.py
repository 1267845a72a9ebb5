"""The mailbox watcher: a long-lived process that micro-batches new ``.avro`` files into the lake.

Every ``interval`` seconds it lists ``<mailbox>/*.avro`` (files whose last change is older than
``settle`` seconds, so a file still being copied is left for the next round), parses up to
``batch_files`` of them (:func:`cosmic_ray.ingest.batch.parse_inputs`: pre-filters, quarantine with
reasons), appends them to the lake and only then moves them to ``<mailbox>/.done/``.

Crash safety: lake files are written under a temporary name and renamed; a file is moved to
``.done/`` only after its points are in the lake. A watcher killed at any point leaves each file
either in ``.done/`` (its points are in the lake) or still in the mailbox (it is read again on
restart, and the lake's dedup drops what was already written). Nothing is lost, nothing doubles.

Producers should write a file under another name (``.tmp``) and rename it to ``*.avro``.

Hostile mailboxes: links are never followed (a ``*.avro`` symbolic link is moved, as a link, into
the quarantine folder with the reason; its target is never opened, and files are opened with
``O_NOFOLLOW``); a file larger than the decompression bound is quarantined unread; a file the
parser fails on is quarantined (bytes and reason) and taken out of the mailbox, so the watcher
goes on and does not meet it again at its next start.

The live path hooks in with ``on_batch(table)``: called after each micro-batch is in the lake with
the light-curve points of the alerts that passed the pre-filters (column ``alert_candid`` names
the alert each point came with).
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cosmic_ray.ingest import prefilter, quarantine
from cosmic_ray.ingest.batch import ParsedBatch, merge_batches, parse_inputs
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.ingest.prefilter import PrefilterConfig
from cosmic_ray.sources.bounded import max_decompressed_bytes
from cosmic_ray.sources.ztf_context import context_from_alerts

log = logging.getLogger(__name__)

DONE = ".done"


@dataclass
class WatchStats:
    """Running totals of a watcher (the JSON line ``cosmic-ray watch`` prints when it stops)."""

    batches: int = 0
    files: int = 0
    alerts: int = 0
    points: int = 0
    duplicates: int = 0
    quarantined: int = 0
    passed: int = 0
    hook_failures: int = 0  # batches whose live hook failed (left in the mailbox, retried)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MailboxWatcher:
    """Watch ``mailbox`` and append what arrives to the lake at ``lake_dir``."""

    def __init__(
        self,
        mailbox: Path | str,
        lake_dir: Path | str,
        quarantine_dir: Path | str,
        interval: float = 1.0,
        batch_files: int = 500,
        settle: float = 0.2,
        prefilter_cfg: PrefilterConfig | None = None,
        on_batch: Callable[[pa.Table], None] | None = None,
    ):
        self.mailbox = Path(mailbox)
        self.done = self.mailbox / DONE
        self.lake = Lake(lake_dir)
        self.quarantine_dir = Path(quarantine_dir)
        self.interval = interval
        self.batch_files = batch_files
        self.settle = settle
        self.prefilter_cfg = prefilter_cfg or PrefilterConfig()
        self.on_batch = on_batch
        self.stats = WatchStats()
        self._stop = False

    def pending(self) -> list[Path]:
        """Settled ``.avro`` files (and links, which :meth:`step` refuses) waiting in the mailbox, oldest first."""
        now = time.time()
        found = []
        for entry in os.scandir(self.mailbox):
            if not entry.name.endswith(".avro"):
                continue
            if entry.is_symlink() or entry.is_file(follow_symlinks=False):
                mtime = entry.stat(follow_symlinks=False).st_mtime
                if now - mtime >= self.settle:
                    found.append((mtime, entry.name))
        return [self.mailbox / name for _, name in sorted(found)]

    def _refuse(self, path: Path, reason: str, data: bytes | None, run_id: str) -> None:
        """Quarantine ``path`` with ``reason`` and take it out of the mailbox (a link is moved as a link)."""
        reason_file = quarantine.quarantine(self.quarantine_dir, str(path), reason, data, run_id)
        if path.is_symlink():
            os.replace(path, reason_file.with_name(reason_file.name.replace(".reason.json", ".link")))
        else:
            path.unlink(missing_ok=True)
        self.stats.quarantined += 1
        log.warning("watch: %s refused: %s", path.name, reason)

    def _read(self, path: Path, run_id: str) -> bytes | None:
        """The bytes of a mailbox file, never through a link; None when it was refused or is gone."""
        limit = max_decompressed_bytes()
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:  # taken by someone else meanwhile
            return None
        except OSError as exc:
            if path.is_symlink():
                self._refuse(path, f"symbolic link to {os.readlink(path)!r}: links are not followed", None, run_id)
            else:
                self._refuse(path, f"unreadable: {exc}", None, run_id)
            return None
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                data = None
            else:
                data = handle.read(limit + 1)
        if data is None or len(data) > limit:
            self._refuse(path, f"larger than {limit} bytes (COSMIC_RAY_MAX_DECOMPRESSED_BYTES): not read", None, run_id)
            return None
        return data

    def _parse(self, items: list[tuple[str, bytes]], run_id: str) -> tuple[ParsedBatch, list[tuple[str, bytes]]]:
        """Parse the batch; if the parser fails on it, file by file, refusing the files it fails on."""
        try:
            return parse_inputs("ztf", items, self.quarantine_dir, run_id, self.prefilter_cfg), items
        except Exception as exc:  # noqa: BLE001 - find the file(s) it fails on; the watcher goes on
            log.warning("watch: batch parse failed (%s: %s): file by file", type(exc).__name__, exc)
        parts, kept = [], []
        for name, data in items:
            try:
                parts.append(parse_inputs("ztf", [(name, data)], self.quarantine_dir, run_id, self.prefilter_cfg))
                kept.append((name, data))
            except Exception as exc:  # noqa: BLE001 - this file: quarantined, out of the mailbox
                self._refuse(Path(name), f"parser failed: {type(exc).__name__}: {exc}"[:500], data, run_id)
        return merge_batches(parts), kept

    def step(self) -> int:
        """Process one micro-batch; returns how many files it took, refused ones included (0: nothing was waiting)."""
        files = self.pending()[: self.batch_files]
        if not files:
            return 0
        run_id = f"watch{uuid.uuid4().hex[:6]}"
        items = []
        for path in files:
            data = self._read(path, run_id)
            if data is not None:
                items.append((str(path), data))
        if not items:
            return len(files)
        parsed, items = self._parse(items, run_id)
        result = self.lake.append(parsed.points, defer=True)
        if parsed.alerts is not None:
            self.lake.append_alerts(parsed.alerts, defer=True)
            self.lake.append_context(context_from_alerts(parsed.alerts))  # position, PS1 host (ztf_context)
        self.lake.flush()  # points first, then the per-alert rows; both deduplicated on a rerun
        ok = prefilter.passed(parsed.alerts) if parsed.alerts is not None else None
        if parsed.alerts is not None and ok is not None and self.on_batch is not None:
            # the live hook runs before the files leave the mailbox: if it fails (the model app is
            # down), the files are read again next round (the lake drops the repeats and the store
            # keeps one row per candid), so no alert is left in the lake but never classified
            keep = parsed.alerts.filter(pa.array(ok)).column("alert_candid")
            try:
                self.on_batch(parsed.points.filter(pc.is_in(parsed.points.column("alert_candid"), keep)))
            except Exception as exc:  # noqa: BLE001 - any failure of the hook: retry the batch later
                log.warning(
                    "watch: the live hook failed (%s); %d files stay in the mailbox for the next round", exc, len(items)
                )
                self.stats.hook_failures += 1
                return 0
        self.done.mkdir(exist_ok=True)
        for name, _ in items:
            os.replace(name, self.done / Path(name).name)  # only now: the points are in the lake
        self.stats.batches += 1
        self.stats.files += len(items)
        self.stats.alerts += parsed.n_alerts
        self.stats.points += result.written
        self.stats.duplicates += result.duplicates
        self.stats.quarantined += parsed.quarantined
        if ok is not None:
            self.stats.passed += int(ok.sum())
        log.info("watch: %d files, %d alerts, %d new points", len(items), parsed.n_alerts, result.written)
        return len(files)  # refused ones included: they left the mailbox too

    def stop(self, *_: Any) -> None:
        self._stop = True

    def run(self, max_seconds: float | None = None) -> WatchStats:
        """Watch until :meth:`stop` (SIGTERM/SIGINT when run by the CLI) or ``max_seconds``."""
        self.mailbox.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        log.info("watching %s -> %s every %.1f s", self.mailbox, self.lake.root, self.interval)
        while not self._stop:
            took = self.step()
            if max_seconds is not None and time.monotonic() - start >= max_seconds:
                break
            if took < self.batch_files:  # caught up: wait for more
                deadline = time.monotonic() + self.interval
                while not self._stop and time.monotonic() < deadline:
                    time.sleep(min(0.05, self.interval))
        return self.stats


def watch(
    mailbox: Path | str,
    lake_dir: Path | str,
    quarantine_dir: Path | str,
    interval: float = 1.0,
    batch_files: int = 500,
    max_seconds: float | None = None,
    on_batch: Callable[[pa.Table], None] | None = None,
) -> WatchStats:
    """Run a :class:`MailboxWatcher` in this process, stopping cleanly on SIGTERM or SIGINT."""
    watcher = MailboxWatcher(mailbox, lake_dir, quarantine_dir, interval, batch_files, on_batch=on_batch)
    signal.signal(signal.SIGTERM, watcher.stop)
    signal.signal(signal.SIGINT, watcher.stop)
    return watcher.run(max_seconds)
