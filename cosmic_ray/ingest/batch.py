"""Bounded ingestion: read a source's inputs in parallel with Ray Data, append to the lake.

Workers parse raw bytes into the light-curve schema and quarantine what they cannot read (with
the reason); the driver appends to the lake, which drops what is already there. ZTF alerts also
get one row each in the lake's per-alert table, with their pre-filter decision.
"""

from __future__ import annotations

import logging
import tarfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cosmic_ray.core.errors import SourceError
from cosmic_ray.core.lightcurve import SCHEMA, conform
from cosmic_ray.ingest import prefilter, quarantine
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.ingest.prefilter import PrefilterConfig
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


@dataclass
class ParsedBatch:
    """What one batch of raw inputs became: points, one row per alert (ZTF), alerts decoded."""

    points: pa.Table
    alerts: pa.Table | None
    n_alerts: int
    quarantined: int = 0


def parse_inputs(
    source_name: str,
    items: Iterable[tuple[str, bytes | None]],
    quarantine_dir: Path | str,
    run_id: str = "",
    prefilter_cfg: PrefilterConfig | None = None,
) -> ParsedBatch:
    """Parse raw inputs (``(name, bytes)``, or ``(path, None)`` to read the file here; ZTF tarballs
    are streamed member by member) into the
    light-curve schema; what cannot be read is quarantined with its reason and bytes.

    ZTF inputs are decoded as one batch (:func:`cosmic_ray.sources.ztf.parse_many`) and their
    per-alert rows get the pre-filter decision (:mod:`cosmic_ray.ingest.prefilter`).
    """
    from cosmic_ray.sources.ztf import RawInput, iter_tarball_bytes

    source = get_source(source_name)
    raws: list[RawInput] = []
    for name, data in items:
        name = str(name)
        is_tar = name.endswith((".tar.gz", ".tgz", ".tar"))
        if data is None and is_tar:
            raws.extend(_iter_tarball_file(name))  # streamed from disk, never unpacked
        elif data is None:
            try:
                raws.append(RawInput(name, Path(name).read_bytes()))
            except OSError as exc:
                quarantine.quarantine(quarantine_dir, name, f"unreadable: {exc}", None, run_id)
        elif is_tar:
            raws.extend(iter_tarball_bytes(name, bytes(data)))
        else:
            raws.append(RawInput(name, bytes(data)))
    if hasattr(source, "parse_many"):
        results = [source.parse_many(raws)]
    else:
        results = [source.parse(raw) for raw in raws]
    by_name = {raw.name: raw.data for raw in raws}
    tables = [SCHEMA.empty_table()]
    metas = []
    n_alerts = quarantined = 0
    for result in results:
        n_alerts += result.alerts
        tables.append(conform(result.table))
        if getattr(result, "alert_meta", None) is not None:
            metas.append(result.alert_meta)
        for name, reason in result.quarantined:
            data = by_name.get(name, by_name.get(name.rsplit("#", 1)[0]))
            quarantine.quarantine(quarantine_dir, name, reason, data or None, run_id)
            quarantined += 1
    alerts = None
    if metas:
        alerts = prefilter.apply(pa.concat_tables(metas), prefilter_cfg or PrefilterConfig())
    return ParsedBatch(pa.concat_tables(tables), alerts, n_alerts, quarantined)


def _iter_tarball_file(name: str):
    from cosmic_ray.sources.ztf import RawInput, iter_tarball

    try:
        yield from iter_tarball(Path(name))
    except (OSError, EOFError, tarfile.TarError) as exc:  # unreadable or not a tar at all: one bad input
        yield RawInput(f"{name}!<unreadable: {type(exc).__name__}>", b"")


def _to_ipc(table: pa.Table | None) -> bytes:
    if table is None:
        return b""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pa.Table | None:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all() if data else None


def _parse_block(
    batch: dict[str, np.ndarray], source_name: str, quarantine_dir: str, run_id: str, prefilter_cfg: dict
) -> pa.Table:
    """Ray Data UDF: a block of paths -> one row carrying the parsed tables (Arrow IPC).

    The task reads the files itself (raw bytes, no transparent decompression: a tarball is
    streamed member by member and a truncated one is quarantined, not a failed task).
    """
    parsed = parse_inputs(
        source_name, ((path, None) for path in batch["path"]), quarantine_dir, run_id, PrefilterConfig(**prefilter_cfg)
    )
    return pa.table(
        {
            "points": pa.array([_to_ipc(parsed.points)], pa.large_binary()),
            "alerts": pa.array([_to_ipc(parsed.alerts)], pa.large_binary()),
            "n_alerts": pa.array([parsed.n_alerts], pa.int64()),
        }
    )


def ingest(
    source_name: str,
    inputs: list[str | Path],
    lake_dir: Path,
    quarantine_dir: Path,
    parallelism: int | None = None,
    prefilter_cfg: PrefilterConfig | None = None,
    files_per_block: int = 128,
    flush_rows: int = 2_000_000,
) -> IngestSummary:
    """Read ``inputs`` of ``source_name`` into the lake with Ray Data.

    Read and parse run in Ray Data tasks (one block of ``files_per_block`` files each);
    the driver deduplicates against the lake's key index and writes one file per
    (source, night) every ``flush_rows`` new points and at the end.

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

    blocks = parallelism or max(1, min(len(files), -(-len(files) // files_per_block)))
    ds = ray.data.from_items([{"path": path} for path in files], override_num_blocks=blocks)
    ds = ds.map_batches(
        _parse_block,
        fn_kwargs={
            "source_name": source_name,
            "quarantine_dir": str(quarantine_dir),
            "run_id": run_id,
            "prefilter_cfg": (prefilter_cfg or PrefilterConfig()).model_dump(),
        },
        batch_format="numpy",
        batch_size=None,
        # one task per CPU: Ray Data otherwise tends to run these fused read+parse tasks one by one
        compute=ray.data.TaskPoolStrategy(size=max(1, min(blocks, int(ray.cluster_resources().get("CPU", 1))))),
    )
    alerts = written = duplicates = 0
    objects: set[str] = set()
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        for points_ipc, alerts_ipc, n in zip(
            *(batch.column(c).to_pylist() for c in ("points", "alerts", "n_alerts")), strict=False
        ):
            alerts += n
            points = _from_ipc(points_ipc)
            result = lake.append(points, defer=True)
            written += result.written
            duplicates += result.duplicates
            objects.update(pc.unique(points.column("object_id")).to_pylist())
            meta = _from_ipc(alerts_ipc)
            if meta is not None:
                lake.append_alerts(meta, defer=True)
        if lake.staged_rows >= flush_rows:
            lake.flush()
    lake.flush()
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
