"""Parse many input files in Ray tasks while the driver stores what they give back.

The files are cut into chunks (a few MB or ``files_per_chunk`` files each, and at least a few
chunks per CPU so the cores stay balanced); each chunk is one plain Ray task that reads its files
and runs :func:`cosmic_ray.ingest.batch.parse_inputs` on them (decode, pre-filters, quarantine with
reasons). The driver keeps a bounded window of chunks in flight and takes their results back in
input order, so the lake's deduplication sees the inputs in the same order on every run, and the
driver's own work (dedup, staging, Parquet writes) overlaps the tasks still decoding.

Ray touch-points: ``ray.remote`` (one task per chunk), ``ray.get`` (each result in order).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cosmic_ray.ingest.prefilter import PrefilterConfig

log = logging.getLogger(__name__)

CHUNK_BYTES = 8 * 1024 * 1024  # ~110 ZTF packets with cutouts: task start-up is then ~1% of the work
CHUNKS_PER_CPU = 4  # enough chunks that no core waits long for the last one
IN_FLIGHT_PER_CPU = 4  # chunks submitted ahead per CPU: a slow chunk does not leave a core idle


@dataclass(frozen=True)
class ParseJob:
    """What every chunk's task needs besides its files (pickled once per task)."""

    source_name: str
    quarantine_dir: str
    run_id: str
    prefilter_cfg: PrefilterConfig
    parse_options: dict[str, Any]


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # unreadable: the task quarantines it with the reason


def chunk_files(
    files: Sequence[str], cpus: int, files_per_chunk: int, chunk_bytes: int = CHUNK_BYTES
) -> list[list[str]]:
    """Cut ``files`` (in order) into chunks of at most ``files_per_chunk`` files and about ``chunk_bytes``
    bytes, with at least ``CHUNKS_PER_CPU`` chunks per CPU when there are that many files.

    Args:
        files: paths, in the order they are to be stored.
        cpus: CPUs the tasks can use.
        files_per_chunk: most files in one chunk.
        chunk_bytes: about the most bytes in one chunk (a single larger file is a chunk of its own).
    """
    if not files:
        return []
    balanced = -(-len(files) // max(1, cpus * CHUNKS_PER_CPU))  # ceil: files per chunk for the minimum count
    most = max(1, min(files_per_chunk, balanced))
    chunks: list[list[str]] = []
    current: list[str] = []
    size = 0
    for path in files:
        n = _size(path)
        if current and (len(current) >= most or size + n > chunk_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(path)
        size += n
    chunks.append(current)
    return chunks


def parse_chunk(paths: list[str], job: ParseJob) -> Any:
    """One task: read and parse ``paths`` (a :class:`cosmic_ray.ingest.batch.ParsedBatch`)."""
    from cosmic_ray.ingest.batch import parse_inputs  # deferred: batch imports this module

    return parse_inputs(
        job.source_name,
        ((path, None) for path in paths),
        job.quarantine_dir,
        job.run_id,
        job.prefilter_cfg,
        job.parse_options,
    )


def parse_files(files: Sequence[str], job: ParseJob, files_per_chunk: int = 128) -> Iterator[Any]:
    """Parse ``files`` in Ray tasks; yield each chunk's ``ParsedBatch`` on the driver, in input order.

    At most ``IN_FLIGHT_PER_CPU`` chunks per CPU are submitted ahead of the one being stored, so
    the driver never holds more than a few chunks' tables at once.
    """
    import ray  # deferred: ray is heavy, and remote requests and parse_inputs do not need it

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    chunks = chunk_files(files, cpus, files_per_chunk)
    task = ray.remote(num_cpus=1)(parse_chunk)
    job_ref = ray.put(job)
    window = max(2, cpus * IN_FLIGHT_PER_CPU)
    pending: deque[Any] = deque()
    todo = iter(chunks)
    log.debug("parsing %d files in %d chunks on %d CPUs", len(files), len(chunks), cpus)
    for chunk in todo:
        pending.append(task.remote(chunk, job_ref))
        if len(pending) >= window:
            break
    while pending:
        result = ray.get(pending.popleft())
        nxt = next(todo, None)
        if nxt is not None:
            pending.append(task.remote(nxt, job_ref))
        yield result
