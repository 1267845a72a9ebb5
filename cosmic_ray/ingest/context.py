"""The lake's per-object context table (``<lake>/_context/``) and ``cosmic-ray ingest context FILE``.

Rows (:data:`cosmic_ray.core.context.CONTEXT_SCHEMA`) come from context tables (CSV or Parquet
with any subset of the shared table's columns ``object_id, ra, dec, gal_b, a_v, host_mag,
host_color, redshift``, plus optionally ``host_offset_arcsec``, ``nuclear_dist_arcsec``,
``redshift_source``, ``updated_mjd``) and from ZTF alerts (:mod:`cosmic_ray.sources.ztf_context`).

Writes are append-only and crash-safe (a file under a temporary name, renamed into place); a read
merges every stored row: per object and per field, the value of the row with the newest
``updated_mjd`` that knows it wins, so a later row with a missing field never erases a known one.
A missing field stays missing (null), never a made-up value.

Example::

    summary = ingest_context_file(Path("bts_dev_context.csv"), lake_dir, quarantine_dir)
    table = read_context(lake_dir, ["ZTF18aacnlxz"])
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cosmic_ray.core.context import CONTEXT_SCHEMA
from cosmic_ray.core.errors import SourceError
from cosmic_ray.ingest import quarantine
from cosmic_ray.sources.sky import extinction_av, galactic_latitude

log = logging.getLogger(__name__)

CONTEXT_DIR = "_context"
COMPACT_AFTER_FILES = 32  # a read that finds more part files writes the merged table back as one
_NUMERIC = tuple(f.name for f in CONTEXT_SCHEMA if pa.types.is_floating(f.type))
#: Valid range of each numeric field; a value outside makes its row bad (quarantined with the reason).
RANGES: dict[str, tuple[float, float]] = {
    "ra": (0.0, 360.0),
    "dec": (-90.0, 90.0),
    "gal_b": (-90.0, 90.0),
    "a_v": (0.0, 50.0),
    "host_mag": (-10.0, 40.0),
    "host_color": (-10.0, 10.0),
    "host_offset_arcsec": (0.0, 3600.0),
    "nuclear_dist_arcsec": (0.0, 3600.0),
    "redshift": (0.0, 20.0),
    "updated_mjd": (0.0, 200_000.0),
}
_MISSING = {"", "nan", "null", "none", "na", "n/a"}
_UNIX_EPOCH_MJD = 40587.0


def mjd_now() -> float:
    """The current time as an MJD (what a table row without ``updated_mjd`` is dated)."""
    return _UNIX_EPOCH_MJD + time.time() / 86400.0


# ------------------------------------------------------------------ the lake table
def context_root(lake_dir: Path | str) -> Path:
    return Path(lake_dir) / CONTEXT_DIR


def _part_files(lake_dir: Path | str) -> list[Path]:
    root = context_root(lake_dir)
    return sorted(root.glob("part-*.parquet")) if root.is_dir() else []


def conform_context(table: pa.Table) -> pa.Table:
    """``table`` with every CONTEXT_SCHEMA column, in order and type (absent columns null)."""
    columns = []
    for f in CONTEXT_SCHEMA:
        if f.name in table.column_names:
            columns.append(table.column(f.name).cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=CONTEXT_SCHEMA)


def merge_context(table: pa.Table) -> pa.Table:
    """One row per object: per field, the value of the newest row (``updated_mjd``, then row order) that has one.

    ``redshift_source`` travels with the redshift it describes; ``updated_mjd`` is the newest seen.
    """
    table = conform_context(table)
    if table.num_rows == 0:
        return table
    df = table.to_pandas()
    df["redshift_source"] = df["redshift_source"].where(df["redshift"].notna(), None)
    df["_order"] = np.arange(len(df))
    df = df.sort_values(["object_id", "updated_mjd", "_order"], kind="stable", na_position="first")
    merged = df.drop(columns="_order").groupby("object_id", sort=True).last()  # last non-null per field
    # the newest redshift and its source come from the same row (sorted: the last row per object is the newest)
    newest_z = df[df["redshift"].notna()].drop_duplicates("object_id", keep="last").set_index("object_id")
    merged["redshift_source"] = newest_z["redshift_source"].reindex(merged.index)
    merged["updated_mjd"] = df.groupby("object_id")["updated_mjd"].max()
    return conform_context(pa.Table.from_pandas(merged.reset_index(), preserve_index=False))


def read_context(lake_dir: Path | str, object_ids: Iterable[str] | None = None) -> pa.Table:
    """The merged context of every object (or of ``object_ids``) in the lake; empty when none is stored."""
    files = _part_files(lake_dir)
    if not files:
        return CONTEXT_SCHEMA.empty_table()
    table = merge_context(pa.concat_tables([conform_context(pq.read_table(p)) for p in files]))
    if len(files) > COMPACT_AFTER_FILES:
        _compact(lake_dir, table, files)
    if object_ids is not None:
        wanted = pa.array(sorted({str(o) for o in object_ids}), pa.string())
        table = table.filter(pc.is_in(table.column("object_id"), wanted))
    return table


def _write(lake_dir: Path | str, table: pa.Table) -> Path:
    """A new part file, written under a temporary name and renamed: a killed writer leaves it whole or absent."""
    root = context_root(lake_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"part-{uuid.uuid4().hex}.parquet"
    tmp = root / f".{name}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, root / name)
    return root / name


def _compact(lake_dir: Path | str, merged: pa.Table, files: list[Path]) -> None:
    """Replace ``files`` by their merged table (written first, so a crash leaves rows twice, never none)."""
    _write(lake_dir, merged)
    for path in files:
        path.unlink(missing_ok=True)


def append_context(lake_dir: Path | str, table: pa.Table) -> int:
    """Store context rows (CONTEXT_SCHEMA columns; others dropped); returns the rows written."""
    table = conform_context(table)
    if table.num_rows == 0:
        return 0
    _write(lake_dir, table)
    return table.num_rows


def context_lookup(table: pa.Table) -> dict[str, dict[str, Any]]:
    """Object id -> its context row as a dict (a merged table: one row per object)."""
    return {row["object_id"]: row for row in table.to_pylist()}


# ------------------------------------------------------------------ context tables (CSV / Parquet)
@dataclass(frozen=True)
class ContextIngestSummary:
    """The one JSON line ``cosmic-ray ingest context FILE`` prints."""

    source: str
    inputs: int
    rows: int
    objects: int
    quarantined: int
    seconds: float
    ignored_columns: list[str] = field(default_factory=list)
    redshift_source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ParsedContext:
    """A context file read: its good rows (CONTEXT_SCHEMA) and each bad row with its reason."""

    table: pa.Table
    bad: list[tuple[int, dict[str, Any], str]]  # (line or row number, the row as read, reason)
    ignored_columns: list[str]


def _number(name: str, raw: Any) -> float | None:
    """A field's value as a float, None when missing.

    Raises:
        ValueError: not a number, not finite, or outside :data:`RANGES`.
    """
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in _MISSING):
        return None
    if isinstance(raw, bool):
        raise ValueError(f"{name}: {raw!r} is not a number")
    try:
        value = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {str(raw)[:40]!r} is not a number") from None
    if math.isnan(value):
        return None
    low, high = RANGES.get(name, (-math.inf, math.inf))
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name} {value:.6g} is outside {low:g}..{high:g}")
    return value


def _row(raw: Mapping[str, Any], default_source: str, source: str, now: float) -> dict[str, Any]:
    """One context row from a table's row.

    Raises:
        ValueError: no object id, or a field that is not a valid number.
    """
    oid = raw.get("object_id")
    oid = "" if oid is None else str(oid).strip()
    if not oid or len(oid) > 128:
        raise ValueError("object_id is missing" if not oid else "object_id is longer than 128 characters")
    row: dict[str, Any] = {"object_id": oid}
    for name in _NUMERIC:
        row[name] = _number(name, raw.get(name))
    if row["updated_mjd"] is None:
        row["updated_mjd"] = now
    z_source = raw.get("redshift_source")
    z_source = str(z_source).strip() if z_source is not None and str(z_source).strip() else default_source
    row["redshift_source"] = z_source if row["redshift"] is not None else None
    row["source"] = source
    return row


def _fill_position_fields(table: pa.Table) -> pa.Table:
    """Galactic latitude (and extinction, with a dust map installed) computed where a row has a position but not them."""
    ra = np.asarray(table.column("ra").to_numpy(zero_copy_only=False), dtype=float)
    dec = np.asarray(table.column("dec").to_numpy(zero_copy_only=False), dtype=float)
    for name, compute in (("gal_b", galactic_latitude), ("a_v", extinction_av)):
        have = np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=float)
        need = ~np.isfinite(have) & np.isfinite(ra) & np.isfinite(dec)
        if need.any():
            have = have.copy()
            have[need] = compute(ra[need], dec[need])
            idx = table.schema.get_field_index(name)
            table = table.set_column(idx, name, pa.array(have, pa.float64(), mask=~np.isfinite(have)))
    return table


def _records(path: Path, data: bytes) -> tuple[list[str], Iterable[tuple[int, dict[str, Any]]]]:
    """(column names, (row number, row)) of a CSV or Parquet file."""
    if path.suffix.lower() in (".parquet", ".pq"):
        table = pq.read_table(io.BytesIO(data))
        return table.column_names, ((i + 1, row) for i, row in enumerate(table.to_pylist()))
    text = data.decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(io.StringIO(text))
    names = [n.strip() for n in (reader.fieldnames or [])]
    reader.fieldnames = names
    return names, ((i + 2, row) for i, row in enumerate(reader))  # line numbers: the header is line 1


def parse_context_file(path: Path | str, redshift_source: str | None = None, now: float | None = None) -> ParsedContext:
    """Read a context table; rows that cannot be read are returned apart with their reasons.

    Args:
        path: a CSV (header row) or Parquet file.
        redshift_source: provenance of its redshifts when it has no ``redshift_source`` column
            (default: the file's name without suffixes, e.g. ``bts_dev_context``).
        now: the MJD its rows are dated when it has no ``updated_mjd`` column (default: now).

    Raises:
        SourceError: the file is unreadable or has no ``object_id`` column.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
        names, rows = _records(path, data)
    except (OSError, pa.ArrowException, UnicodeError, csv.Error) as exc:
        raise SourceError(f"context table {path} is unreadable: {type(exc).__name__}: {exc}") from exc
    if "object_id" not in names:
        raise SourceError(f"context table {path} has no object_id column (columns: {', '.join(names) or 'none'})")
    known = {f.name for f in CONTEXT_SCHEMA} - {"source"}
    ignored = [n for n in names if n not in known]
    if ignored:
        log.info("context table %s: columns %s are not context fields: ignored", path.name, ignored)
    default_source = redshift_source or path.name.split(".")[0]
    stamp = mjd_now() if now is None else now
    good: list[dict[str, Any]] = []
    bad: list[tuple[int, dict[str, Any], str]] = []
    try:
        for number, raw in rows:
            try:
                good.append(_row(raw, default_source, path.name, stamp))
            except ValueError as exc:
                bad.append((number, {k: raw.get(k) for k in names if k}, str(exc)))
    except csv.Error as exc:
        raise SourceError(f"context table {path} is not readable CSV: {exc}") from exc
    table = pa.Table.from_pylist(good, schema=CONTEXT_SCHEMA) if good else CONTEXT_SCHEMA.empty_table()
    return ParsedContext(_fill_position_fields(table), bad, ignored)


def ingest_context_file(
    path: Path | str, lake_dir: Path | str, quarantine_dir: Path | str, redshift_source: str | None = None
) -> ContextIngestSummary:
    """``cosmic-ray ingest context FILE``: store a context table's good rows; quarantine the bad ones with reasons.

    Raises:
        SourceError: the file is unreadable or has no ``object_id`` column.
    """
    start = time.perf_counter()
    path = Path(path)
    parsed = parse_context_file(path, redshift_source)
    run_id = f"ctx{uuid.uuid4().hex[:6]}"
    for number, raw, reason in parsed.bad:
        body = ",".join(f"{k}={v}" for k, v in raw.items()).encode("utf-8", "replace")
        quarantine.quarantine(quarantine_dir, f"{path.name}#{number}", f"context row {number}: {reason}", body, run_id)
    written = append_context(lake_dir, parsed.table)
    objects = len(set(parsed.table.column("object_id").to_pylist()))
    summary = ContextIngestSummary(
        source="context",
        inputs=1,
        rows=written,
        objects=objects,
        quarantined=len(parsed.bad),
        seconds=round(time.perf_counter() - start, 3),
        ignored_columns=parsed.ignored_columns,
        redshift_source=redshift_source or path.name.split(".")[0],
    )
    log.info("ingest context %s: %s", path.name, summary)
    return summary


def evaluation_context(lake_dir: Path | str, table_path: Path | str | None = None) -> pa.Table:
    """The lake's context with a context table's good rows added (in memory only; nothing is written).

    The table's rows are dated now unless they say otherwise, so they win field by field over the
    lake's; its bad rows are left out with a warning (``ingest context`` quarantines them).

    Raises:
        SourceError: the table is unreadable or has no ``object_id`` column.
    """
    lake_rows = [conform_context(pq.read_table(p)) for p in _part_files(lake_dir)]
    if table_path is None:
        return merge_context(pa.concat_tables(lake_rows)) if lake_rows else CONTEXT_SCHEMA.empty_table()
    parsed = parse_context_file(table_path)
    if parsed.bad:
        log.warning("context table %s: %d bad rows left out (first: %s)", table_path, len(parsed.bad), parsed.bad[0][2])
    return merge_context(pa.concat_tables([*lake_rows, parsed.table]))
