"""The Parquet light-curve lake: ``<root>/source=<source>/night=<YYYYMMDD>/part-<id>.parquet``,
one row per ZTF alert (pre-filter decisions) in ``<root>/_alerts/night=<YYYYMMDD>/``, the
archive observations found by MAST searches (anchors, not points) in ``<root>/_anchors/``, and the
per-object context (position, host, redshift) in ``<root>/_context/`` (:mod:`cosmic_ray.ingest.context`).

Appends are idempotent (points already present are counted as duplicates, not written) and
crash-safe (each file is written under a temporary name and renamed into place, so a killed
writer leaves either a whole file or none; the next run re-derives what is present from the
files themselves).
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from cosmic_ray.core.errors import SourceError
from cosmic_ray.core.lightcurve import SCHEMA, conform, upgrade_legacy
from cosmic_ray.ingest import context as context_table
from cosmic_ray.ingest import cutouts
from cosmic_ray.ingest.keyindex import CandidIndex, PointKeyIndex

log = logging.getLogger(__name__)

PARTITION_COLUMNS = ("source", "night")
PARTITIONING = pads.partitioning(pa.schema([("source", pa.string()), ("night", pa.string())]), flavor="hive")
_KEY_COLUMNS = ["source", "object_id", "band", "mjd", "is_limit", "candid"]
ALERTS_DIR = "_alerts"
ANCHORS_DIR = "_anchors"
ROW_GROUP_ROWS = 4_096  # small enough for statistics to prune by object, large enough to read fast


@dataclass(frozen=True)
class AppendResult:
    written: int
    duplicates: int
    objects: int


_PARTITION_VALUE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


def _check_partition(source: str, night: str) -> None:
    """Partition values name folders: one that could leave the lake (``..``, a separator) is refused.

    Raises:
        SourceError: the source or night is not a plain name.
    """
    for value in (source, night):
        if not _PARTITION_VALUE.match(value) or ".." in value:
            raise SourceError(f"lake partition value {value!r} is not a plain name (letters, digits, _ . -): refused")


class Lake:
    """Append-only Parquet store of light-curve points, plus one row per ZTF alert under ``_alerts/``
    (the pre-filter decisions; see :mod:`cosmic_ray.ingest.prefilter`).

    ``append(table)`` writes at once; ``append(table, defer=True)`` only stages the new points
    (deduplicated already) and ``flush()`` writes everything staged as one file per
    (source, night): fewer, larger files for bulk ingests and micro-batches.
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._keys: PointKeyIndex | None = None
        self._alert_keys: CandidIndex | None = None
        self._staged: list[pa.Table] = []
        self._staged_alerts: list[pa.Table] = []

    def _dataset(self) -> pads.Dataset | None:
        if not self.root.is_dir() or not self.files():
            return None
        return pads.dataset(
            self.root,
            format="parquet",
            partitioning=PARTITIONING,
            schema=SCHEMA,
            exclude_invalid_files=True,
            ignore_prefixes=[".", "_"],
        )

    def key_index(self) -> PointKeyIndex:
        """The identities of the points already in the lake (read from the files once, then kept)."""
        if self._keys is None:
            self._keys = PointKeyIndex()
            dataset = self._dataset()
            if dataset is not None:
                for batch in dataset.to_batches(columns=_KEY_COLUMNS):
                    self._keys.add_new(pa.Table.from_batches([batch]))
        return self._keys

    def append(self, table: pa.Table, defer: bool = False) -> AppendResult:
        """Add the points not yet in the lake (written now, or staged until :meth:`flush`)."""
        if table.num_rows == 0:
            return AppendResult(0, 0, 0)
        table = conform(table)
        keep = self.key_index().add_new(table)
        new = table.filter(pa.array(keep)) if not keep.all() else table
        if defer:
            self._staged.append(new)
        else:
            self._write_partitions(new)
        objects = len(pc.unique(new.column("object_id")))
        return AppendResult(written=new.num_rows, duplicates=int(len(keep) - keep.sum()), objects=objects)

    def flush(self) -> int:
        """Write what :meth:`append` (``defer=True``) and :meth:`append_alerts` staged; returns points written."""
        staged, self._staged = self._staged, []
        table = pa.concat_tables(staged) if staged else SCHEMA.empty_table()
        self._write_partitions(table)
        alerts, self._staged_alerts = self._staged_alerts, []
        if alerts:
            self._write_alerts(pa.concat_tables(alerts))
        return table.num_rows

    @property
    def staged_rows(self) -> int:
        return sum(t.num_rows for t in self._staged)

    def _write_partitions(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        parts = pc.binary_join_element_wise(table.column("source"), table.column("night"), "\x1f")
        # by partition, then by object: each file's row groups cover narrow object ranges, so a read
        # of one object (read_objects) skips the others by their Parquet statistics
        keys = pa.table({"part": parts, "object_id": table.column("object_id")})
        order = pc.sort_indices(keys, sort_keys=[("part", "ascending"), ("object_id", "ascending")])
        table, parts = table.take(order), parts.take(order)
        if isinstance(parts, pa.ChunkedArray):
            parts = parts.combine_chunks()
        runs = pc.run_end_encode(parts)
        ends = runs.run_ends.to_numpy()
        starts = np.concatenate([[0], ends[:-1]])
        for value, start, end in zip(runs.values.to_pylist(), starts, ends, strict=False):
            source, night = value.rsplit("\x1f", 1)  # a source may hold the separator: refused below
            _check_partition(source, night)
            chunk = table.slice(int(start), int(end - start)).drop_columns(list(PARTITION_COLUMNS))
            self._write_file(self.root / f"source={source}" / f"night={night}", chunk)

    @staticmethod
    def _write_file(folder: Path, table: pa.Table) -> None:
        """Write under a temporary name and rename: a killed writer leaves a whole file or none."""
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{uuid.uuid4().hex}.parquet"
        tmp = folder / f".{name}.tmp"
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS)
        os.replace(tmp, folder / name)

    # ------------------------------------------------------------------ per-alert table
    @property
    def alerts_root(self) -> Path:
        return self.root / ALERTS_DIR

    def _alert_dataset(self) -> pads.Dataset | None:
        if not self.alerts_root.is_dir() or not any(self.alerts_root.rglob("part-*.parquet")):
            return None
        return pads.dataset(
            self.alerts_root,
            format="parquet",
            partitioning=pads.partitioning(pa.schema([("night", pa.string())]), flavor="hive"),
            exclude_invalid_files=True,
            ignore_prefixes=[".", "_"],
        )

    def append_alerts(self, table: pa.Table, defer: bool = False) -> int:
        """Add per-alert rows (``alert_candid`` unique) not yet stored; returns how many are new."""
        if table.num_rows == 0:
            return 0
        if self._alert_keys is None:
            self._alert_keys = CandidIndex()
            dataset = self._alert_dataset()
            if dataset is not None:
                self._alert_keys.add_new_candids(dataset.to_table(columns=["alert_candid"]).column(0).to_numpy())
        keep = self._alert_keys.add_new_candids(table.column("alert_candid").to_numpy())
        # ZTF stamps -> <root>/_cutouts/ now (while a batch ingest's parse tasks run on), off the rows
        new = cutouts.store_alert_extras(self.root, table.filter(pa.array(keep)))
        if defer:
            self._staged_alerts.append(new)
        else:
            self._write_alerts(new)
        return new.num_rows

    def _write_alerts(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        table = table.sort_by("night")
        runs = pc.run_end_encode(table.column("night").combine_chunks())
        ends = runs.run_ends.to_numpy()
        starts = np.concatenate([[0], ends[:-1]])
        for night, start, end in zip(runs.values.to_pylist(), starts, ends, strict=False):
            chunk = table.slice(int(start), int(end - start)).drop_columns(["night"])
            self._write_file(self.alerts_root / f"night={night}", chunk)

    def read_alerts(self) -> pa.Table:
        """One row per ingested ZTF alert, with its pre-filter decision and reason."""
        dataset = self._alert_dataset()
        return pa.table({}) if dataset is None else dataset.to_table()

    # ------------------------------------------------------------------ archive observations (anchors)
    @property
    def anchors_root(self) -> Path:
        return self.root / ANCHORS_DIR

    def read_anchors(self) -> pa.Table:
        """Every stored archive observation (:data:`cosmic_ray.sources.mast.ANCHOR_SCHEMA` rows)."""
        files = sorted(p for p in self.anchors_root.glob("part-*.parquet")) if self.anchors_root.is_dir() else []
        return pa.concat_tables([pq.read_table(p) for p in files]) if files else pa.table({})

    def append_anchors(self, table: pa.Table) -> AppendResult:
        """Add the observations (``obs_id`` unique) not stored yet; written at once.

        Raises:
            SourceError: the table has no ``obs_id`` column (not anchors).
        """
        if "obs_id" not in table.column_names:
            raise SourceError(f"anchors need an obs_id column; got {table.column_names}")
        stored = self.read_anchors()
        seen = set(stored.column("obs_id").to_pylist()) if stored.num_rows else set()
        keep = np.zeros(table.num_rows, dtype=bool)
        for i, obs_id in enumerate(table.column("obs_id").to_pylist()):
            keep[i] = obs_id not in seen
            seen.add(obs_id)
        new = table.filter(pa.array(keep))
        if new.num_rows:
            self._write_file(self.anchors_root, new)
        return AppendResult(written=new.num_rows, duplicates=int((~keep).sum()), objects=0)

    # ------------------------------------------------------------------ per-object context (ingest/context.py)
    def read_context(self, object_ids: list[str] | None = None) -> pa.Table:
        """The merged per-object context (:data:`cosmic_ray.core.context.CONTEXT_SCHEMA`, ``_context/``)."""
        return context_table.read_context(self.root, object_ids)

    def append_context(self, table: pa.Table) -> int:
        """Store context rows (merged field by field on read, newest ``updated_mjd`` first); returns rows written."""
        return context_table.append_context(self.root, table)

    # ------------------------------------------------------------------ reading
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
        return conform(upgrade_legacy(dataset.to_table(filter=expr)))

    def read_objects(self, object_ids: list[str], columns: list[str] | None = None) -> pa.Table:
        """The points of some objects only: the filter is pushed into the Parquet scan (row groups
        whose ``object_id`` statistics exclude them are skipped, and only ``columns`` are decoded).

        Args:
            object_ids: the objects wanted.
            columns: the columns to return (default: every lake column, in the lake schema).
        """
        dataset = self._dataset()
        ids = list(object_ids)
        # one object: an equality, which Parquet statistics prune best
        wanted = pc.field("object_id") == ids[0] if len(ids) == 1 else pc.field("object_id").isin(ids)
        if dataset is None or not object_ids:
            empty = SCHEMA.empty_table()
            return empty.select(columns) if columns else empty
        table = dataset.to_table(columns=columns, filter=wanted)
        return upgrade_legacy(table) if columns else conform(upgrade_legacy(table))

    def files(self) -> list[Path]:
        """The light-curve files (not the per-alert table, not temporary files)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("source=*/night=*/*.parquet") if not p.name.startswith("."))
