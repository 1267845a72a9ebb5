"""Bounded ingestion: read a source's inputs in parallel with Ray Data, append to the lake.

Workers parse raw bytes into the light-curve schema and quarantine what they cannot read (with
the reason); the driver appends to the lake, which drops what is already there.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cosmic_ray import quarantine
from cosmic_ray.errors import SourceError
from cosmic_ray.lake import Lake
from cosmic_ray.lightcurve import SCHEMA
from cosmic_ray.sources import get_source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestSummary:
    """The one JSON line ``cosmic-ray ingest`` prints."""

    source: str
    inputs: int
    alerts: int
    objects: int
    points: int
    duplicates: int
    quarantined: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def request_files(request: Any) -> list[str]:
    """The files a file-based request will read (ZTF Avro + tarballs, catalogue CSVs, FITS...)."""
    for attr in ("avro_files", "files", "paths"):
        if hasattr(request, attr):
            files = [str(p) for p in getattr(request, attr)]
            files += [str(p) for p in getattr(request, "tarballs", ())]
            return files
    raise SourceError(f"{type(request).__name__} is not file based")


class _ParseBatch:
    """Ray Data UDF: (path, bytes) rows -> light-curve points; quarantines on the worker."""

    def __init__(self, source_name: str, quarantine_dir: str, run_id: str):
        self.source_name = source_name
        self.quarantine_dir = quarantine_dir
        self.run_id = run_id

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        from cosmic_ray.sources.ztf import RawInput, iter_tarball_bytes

        source = get_source(self.source_name)
        tables = [SCHEMA.empty_table()]
        alerts = 0
        for path, data in zip(batch["path"], batch["bytes"]):
            raws = iter_tarball_bytes(path, data) if str(path).endswith((".tar.gz", ".tgz", ".tar")) else [RawInput(str(path), bytes(data))]
            for raw in raws:
                result = source.parse(raw)
                alerts += result.alerts
                tables.append(result.table)
                keep_bytes = result.alerts == 0 and result.table.num_rows == 0  # nothing usable: keep the file
                for name, reason in result.quarantined:
                    data = raw.data if keep_bytes else None
                    quarantine.quarantine(self.quarantine_dir, name, reason, data, self.run_id)
        out = pa.concat_tables(tables)
        # alert count travels as a column on the first row so the driver can sum it
        counts = np.zeros(out.num_rows, dtype=np.int64)
        if out.num_rows:
            counts[0] = alerts
        elif alerts:
            raise AssertionError("alerts decoded without points")
        return out.append_column("_alerts", pa.array(counts))


def ingest(
    source_name: str,
    inputs: list[str | Path],
    lake_dir: Path,
    quarantine_dir: Path,
    parallelism: int | None = None,
) -> IngestSummary:
    """Read ``inputs`` of ``source_name`` into the lake with Ray Data.

    Raises:
        SourceError: nothing readable was given (no input file at all).
    """
    import ray

    start = time.perf_counter()
    source = get_source(source_name)
    request = source.build_request(inputs)
    files = request_files(request)
    if not files:
        raise SourceError(f"no {source_name} input found in {[str(i) for i in inputs]}")
    run_id = uuid.uuid4().hex[:8]
    lake = Lake(lake_dir)
    lake_dir.mkdir(parents=True, exist_ok=True)

    ds = ray.data.read_binary_files(files, include_paths=True, override_num_blocks=parallelism or min(len(files), 16))
    ds = ds.map_batches(
        _ParseBatch,
        fn_constructor_args=(source_name, str(quarantine_dir), run_id),
        batch_format="numpy",
        batch_size=64,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=2),
    )
    alerts = written = duplicates = 0
    objects: set[str] = set()
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        alerts += int(pa.compute.sum(batch.column("_alerts")).as_py() or 0)
        points = batch.drop_columns(["_alerts"])
        result = lake.append(points)
        written += result.written
        duplicates += result.duplicates
        objects.update(points.column("object_id").to_pylist())
    summary = IngestSummary(
        source=source_name,
        inputs=len(files),
        alerts=alerts,
        objects=len(objects),
        points=written,
        duplicates=duplicates,
        quarantined=quarantine.count(quarantine_dir, run_id),
        seconds=round(time.perf_counter() - start, 3),
    )
    log.info("ingest %s: %s", source_name, summary)
    return summary
