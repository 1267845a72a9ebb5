"""The Parquet light-curve lake: ``<root>/source=<source>/night=<YYYYMMDD>/part-<id>.parquet``.

Appends are idempotent (points already present are counted as duplicates, not written) and
crash-safe (each file is written under a temporary name and renamed into place, so a killed
writer leaves either a whole file or none; the next run re-derives what is present from the
files themselves).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from cosmic_ray.lightcurve import SCHEMA, conform

log = logging.getLogger(__name__)

PARTITION_COLUMNS = ("source", "night")
PARTITIONING = pads.partitioning(pa.schema([("source", pa.string()), ("night", pa.string())]), flavor="hive")
_KEY_COLUMNS = ["source", "object_id", "band", "mjd", "is_limit", "candid"]


@dataclass(frozen=True)
class AppendResult:
    written: int
    duplicates: int
    objects: int


def point_keys(table: pa.Table) -> np.ndarray:
    """A stable identity per point: detections by ``candid`` where they have one, else by
    (source, object, band, time to 1e-6 d, limit flag)."""
    mjd = np.round(table.column("mjd").to_numpy(zero_copy_only=False).astype(float), 6)
    candid = table.column("candid").to_pylist() if "candid" in table.column_names else [None] * table.num_rows
    src = table.column("source").to_pylist()
    obj = table.column("object_id").to_pylist()
    band = table.column("band").to_pylist()
    lim = table.column("is_limit").to_pylist()
    keys = [
        f"{s}|c{c}" if c is not None else f"{s}|{o}|{b}|{m:.6f}|{int(bool(li))}"
        for s, o, b, m, li, c in zip(src, obj, band, mjd, lim, candid)
    ]
    return np.asarray(keys, dtype=object)


class Lake:
    """Append-only Parquet store of light-curve points."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._keys: set[str] | None = None

    def _dataset(self) -> pads.Dataset | None:
        if not self.root.is_dir() or not any(self.root.rglob("*.parquet")):
            return None
        return pads.dataset(
            self.root,
            format="parquet",
            partitioning=PARTITIONING,
            schema=SCHEMA,
            exclude_invalid_files=True,
            ignore_prefixes=[".", "_"],
        )

    def existing_keys(self) -> set[str]:
        if self._keys is None:
            dataset = self._dataset()
            self._keys = set() if dataset is None else set(point_keys(dataset.to_table(columns=_KEY_COLUMNS)))
        return self._keys

    def append(self, table: pa.Table) -> AppendResult:
        """Write the points not yet in the lake; returns what was written and what was skipped."""
        if table.num_rows == 0:
            return AppendResult(0, 0, 0)
        table = conform(table)
        keys = point_keys(table)
        existing = self.existing_keys()
        _, first = np.unique(keys, return_index=True)
        keep = np.zeros(len(keys), dtype=bool)
        keep[first] = True
        keep &= np.fromiter((k not in existing for k in keys), dtype=bool, count=len(keys))
        new = table.filter(pa.array(keep))
        self._write_partitions(new)
        existing.update(keys[keep])
        objects = len(set(new.column("object_id").to_pylist()))
        return AppendResult(written=new.num_rows, duplicates=int(len(keys) - keep.sum()), objects=objects)

    def _write_partitions(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        parts = pc.binary_join_element_wise(table.column("source"), table.column("night"), "\x1f")
        for value in pc.unique(parts).to_pylist():
            source, night = value.split("\x1f")
            chunk = table.filter(pc.equal(parts, value)).drop_columns(list(PARTITION_COLUMNS))
            folder = self.root / f"source={source}" / f"night={night}"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"part-{uuid.uuid4().hex}.parquet"
            tmp = folder / f".{name}.tmp"
            pq.write_table(chunk, tmp)
            os.replace(tmp, folder / name)

    def read(self, sources: list[str] | None = None, nights_from: str | None = None) -> pa.Table:
        """All points (optionally of some sources, and from a night on), in the lake schema."""
        dataset = self._dataset()
        if dataset is None:
            return SCHEMA.empty_table()
        expr = None
        if sources:
            expr = pc.field("source").isin(sources)
        if nights_from:
            cond = pc.field("night") >= nights_from
            expr = cond if expr is None else expr & cond
        return conform(dataset.to_table(filter=expr))

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*.parquet") if not p.name.startswith("."))
