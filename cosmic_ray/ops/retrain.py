"""The retrain pipeline: window snapshot -> featurize -> train -> evaluate/gate -> register ->
(serving follows the production alias) -> retention. Used by jobs/retrain.py and ``cosmic-ray retrain``.

Each stage logs a line the Ray dashboard's job logs show; a failing stage raises, so the job
exits non-zero with the reason (no silent partial success).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cosmic_ray.core.config import RetrainConfig, Settings, TrainConfig
from cosmic_ray.ingest.lake import Lake

log = logging.getLogger(__name__)

#: Sources cut to the last N nights; everything else (anchors, labelled catalogues) is always in.
WINDOWED_SOURCES = ("ztf_alert", "ztf_fp", "ztf_irsa")


@dataclass(frozen=True)
class Window:
    as_of: str  # YYYYMMDD, last night included
    first_night: str  # YYYYMMDD, first night included
    nights: int

    def contains(self, night: str) -> bool:
        return self.first_night <= night <= self.as_of


@dataclass
class RetrainReport:
    window: dict[str, Any]
    dataset: dict[str, Any]
    train: dict[str, Any]
    retention: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _partitions(lake: Lake) -> list[tuple[str, str, Path]]:
    """(source, night, folder) of every lake partition."""
    out = []
    for folder in sorted(lake.root.glob("source=*/night=*")):
        if folder.is_dir():
            out.append((folder.parent.name.split("=", 1)[1], folder.name.split("=", 1)[1], folder))
    return out


def window_for(lake: Lake, nights: int, as_of: str | None = None) -> Window:
    """The last ``nights`` nights ending ``as_of`` (default: the latest windowed night in the lake, else today)."""
    if as_of is None:
        present = [night for source, night, _ in _partitions(lake) if source in WINDOWED_SOURCES]
        as_of = max(present) if present else dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    last = dt.datetime.strptime(as_of, "%Y%m%d").date()
    first = last - dt.timedelta(days=nights - 1)
    return Window(as_of=as_of, first_night=first.strftime("%Y%m%d"), nights=nights)


def snapshot(lake: Lake, window: Window) -> dict[str, Any]:
    """Exact content of the training window: every file with its SHA-256 and row count."""
    # deferred: pyarrow, MLflow and the training stack load only when a retrain runs
    import pyarrow.parquet as pq

    files = []
    for source, night, folder in _partitions(lake):
        if source in WINDOWED_SOURCES and not window.contains(night):
            continue
        for path in sorted(folder.glob("*.parquet")):
            files.append(
                {
                    "path": str(path.relative_to(lake.root)),
                    "source": source,
                    "night": night,
                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                    "rows": pq.ParquetFile(path).metadata.num_rows,
                }
            )
    digest = hashlib.sha256("".join(f["sha256"] for f in files).encode()).hexdigest()[:16]
    by_source: dict[str, int] = {}
    for f in files:
        by_source[f["source"]] = by_source.get(f["source"], 0) + f["rows"]
    return {
        "lake": str(lake.root),
        "window": asdict(window),
        "digest": digest,
        "rows": sum(by_source.values()),
        "rows_by_source": by_source,
        "files": files,
    }


def apply_retention(lake: Lake, window: Window, raw_dirs: list[Path] | None = None) -> dict[str, Any]:
    """Delete windowed lake partitions older than the window, and raw input files older than it.

    Partitions inside the window, anchors and labelled catalogues are never touched; the models and
    their dataset records live in MLflow, not here.
    """
    removed_partitions, removed_rows = [], 0
    for source, night, folder in _partitions(lake):
        if source in WINDOWED_SOURCES and night < window.first_night:
            # deferred: pyarrow, MLflow and the training stack load only when a retrain runs
            import pyarrow.parquet as pq

            removed_rows += sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("*.parquet"))
            shutil.rmtree(folder)
            removed_partitions.append(f"source={source}/night={night}")
    cutoff = dt.datetime.strptime(window.first_night, "%Y%m%d").replace(tzinfo=dt.UTC).timestamp()
    removed_files = 0
    for raw in raw_dirs or []:
        for path in Path(raw).rglob("*"):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed_files += 1
    return {"partitions_removed": removed_partitions, "rows_removed": removed_rows, "raw_files_removed": removed_files}


def run(
    settings: Settings,
    cfg: RetrainConfig,
    train_cfg: TrainConfig,
    as_of: str | None = None,
    raw_dirs: list[Path] | None = None,
) -> RetrainReport:
    """The whole pipeline; raises on the first failing stage."""
    # deferred: pyarrow, MLflow and the training stack load only when a retrain runs
    from cosmic_ray.learn import registry
    from cosmic_ray.ops import pipeline

    start = time.perf_counter()
    lake = Lake(settings.lake_dir)
    window = window_for(lake, cfg.window_nights, as_of)
    log.info("stage 1/4 snapshot: window %s..%s (%d nights)", window.first_night, window.as_of, window.nights)
    record = snapshot(lake, window)
    log.info("stage 1/4 snapshot: %d files, %d rows, digest %s", len(record["files"]), record["rows"], record["digest"])
    log.info("stage 2/4 featurize + train + evaluate + register + gate")
    report = pipeline.train_from_lake(settings, train_cfg, gate=cfg.gate)
    log.info("stage 3/4 dataset record: logging the window as the run's MLflow dataset input")
    registry.log_dataset_record(settings, report.run_id, record)
    retention: dict[str, Any] = {"enabled": cfg.retention.delete_raw_outside_window}
    if cfg.retention.delete_raw_outside_window:
        log.info("stage 4/4 retention: deleting raw inputs older than %s", window.first_night)
        retention.update(apply_retention(lake, window, raw_dirs))
    else:
        log.info("stage 4/4 retention: disabled (retention.delete_raw_outside_window)")
    log.info(
        "retrain done: %s v%s, gate %s (%s)",
        report.model_name,
        report.version,
        "promoted" if report.gate["promoted"] else "kept production",
        report.gate["reason"],
    )
    summary = {k: v for k, v in report.to_dict().items() if k != "history"}
    summary["worker_nodes"] = report.history[-1].get("worker_nodes") if report.history else None  # of the last attempt
    return RetrainReport(
        window=asdict(window),
        dataset={k: v for k, v in record.items() if k != "files"} | {"files": len(record["files"])},
        train=summary,
        retention=retention,
        seconds=round(time.perf_counter() - start, 2),
    )
