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

from cosmic_ray.ingest import prefilter
from cosmic_ray.ingest.batch import parse_inputs
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.ingest.prefilter import PrefilterConfig

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
        """Settled ``.avro`` files waiting in the mailbox, oldest first."""
        now = time.time()
        found = []
        for entry in os.scandir(self.mailbox):
            if entry.is_file() and entry.name.endswith(".avro"):
                mtime = entry.stat().st_mtime
                if now - mtime >= self.settle:
                    found.append((mtime, entry.name))
        return [self.mailbox / name for _, name in sorted(found)]

    def step(self) -> int:
        """Process one micro-batch; returns how many files it took (0: nothing was waiting)."""
        files = self.pending()[: self.batch_files]
        if not files:
            return 0
        items = []
        for path in files:
            try:
                items.append((str(path), path.read_bytes()))
            except FileNotFoundError:  # taken by someone else meanwhile
                continue
        parsed = parse_inputs("ztf", items, self.quarantine_dir, f"watch{uuid.uuid4().hex[:6]}", self.prefilter_cfg)
        result = self.lake.append(parsed.points, defer=True)
        if parsed.alerts is not None:
            self.lake.append_alerts(parsed.alerts, defer=True)
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
        return len(items)

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
