"""A compact in-memory set of point identities for the lake's deduplication.

A Python ``set`` of key strings costs ~130 bytes a point: a watcher that ingests a night of
alerts (each carrying ~30 days of history) grows by megabytes per thousand alerts. Here a
point costs 8 bytes in sorted ``int64`` arrays, and membership is vectorised:

- detections with a ``candid`` are kept exactly, per source (ZTF candids are unique 64-bit ids);
- points without one (upper limits, catalogue and TESS points) by a 64-bit hash of
  (source, object, band, time to 1e-6 d, limit flag). Two different points share a hash with
  probability ~n^2 / 2^65 (about 3e-4 for 10^8 such points); such a point would be counted as a
  duplicate.

New keys go into small sorted runs that are merged into the main array once they add up
(amortised O(log n) per key, no Python loop over points).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MERGE_RUNS = 16
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser over uint64 (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def _string_hashes(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A stable 64-bit hash per value of a string column (hashlib over the distinct values only)."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    values = [
        int.from_bytes(hashlib.blake2b(str(v).encode(), digest_size=8).digest(), "little")
        for v in encoded.dictionary.to_pylist()
    ]
    table = np.array(values, dtype=np.uint64) if values else np.zeros(0, dtype=np.uint64)
    return table[encoded.indices.to_numpy(zero_copy_only=False)]


class _SortedRuns:
    """A set of int64 keys as one sorted array plus a few small sorted runs."""

    def __init__(self) -> None:
        self._main = np.zeros(0, dtype=np.int64)
        self._runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._main) + sum(len(r) for r in self._runs)

    @property
    def nbytes(self) -> int:
        return self._main.nbytes + sum(r.nbytes for r in self._runs)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        found = np.zeros(len(keys), dtype=bool)
        for arr in (self._main, *self._runs):
            if len(arr):
                pos = np.searchsorted(arr, keys).clip(max=len(arr) - 1)
                found |= arr[pos] == keys
        return found

    def add_new(self, keys: np.ndarray) -> None:
        """Add keys known to be absent and distinct."""
        if len(keys) == 0:
            return
        self._runs.append(np.sort(keys))
        if len(self._runs) >= _MERGE_RUNS:
            self._main = np.sort(np.concatenate([self._main, *self._runs]), kind="stable")
            self._runs = []


class PointKeyIndex:
    """The identities of the points in the lake; ``add_new(table)`` says which rows are new."""

    def __init__(self) -> None:
        self._candids: dict[str, _SortedRuns] = {}
        self._hashed = _SortedRuns()

    def __len__(self) -> int:
        return len(self._hashed) + sum(len(s) for s in self._candids.values())

    @property
    def nbytes(self) -> int:
        return self._hashed.nbytes + sum(s.nbytes for s in self._candids.values())

    def add_new(self, table: pa.Table) -> np.ndarray:
        """Mark the rows of ``table`` not seen before (and not repeated earlier in the same table)
        as new, remember them, and return that boolean mask."""
        n = table.num_rows
        keep = np.zeros(n, dtype=bool)
        if n == 0:
            return keep
        if "candid" in table.column_names:
            candid = table.column("candid")
            has_candid = pc.is_valid(candid).to_numpy(zero_copy_only=False)
            candid_values = pc.fill_null(candid, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        else:
            has_candid = np.zeros(n, dtype=bool)
            candid_values = np.zeros(n, dtype=np.int64)
        sources = table.column("source").to_numpy(zero_copy_only=False)

        if has_candid.any():
            rows = np.flatnonzero(has_candid)
            for source in np.unique(sources[rows]):
                sub = rows[sources[rows] == source]
                keep[sub] = self._take_new(self._candids.setdefault(str(source), _SortedRuns()), candid_values[sub])
        if not has_candid.all():
            rows = np.flatnonzero(~has_candid)
            part = table.take(pa.array(rows))
            keep[rows] = self._take_new(self._hashed, self._point_hashes(part))
        return keep

    @staticmethod
    def _take_new(index: _SortedRuns, keys: np.ndarray) -> np.ndarray:
        # first occurrence of each key within the batch, then those the index lacks
        _, first = np.unique(keys, return_index=True)
        new = np.zeros(len(keys), dtype=bool)
        new[first] = True
        new[first] = ~index.contains(keys[first])
        index.add_new(keys[new])
        return new

    @staticmethod
    def _point_hashes(table: pa.Table) -> np.ndarray:
        micro_days = pc.cast(pc.round(pc.multiply(table.column("mjd"), 1e6)), pa.int64()).to_numpy(zero_copy_only=False)
        limit = table.column("is_limit").to_numpy(zero_copy_only=False).astype(np.uint64)
        with np.errstate(over="ignore"):
            h = _string_hashes(table.column("source"))
            for part in (
                _string_hashes(table.column("object_id")),
                _string_hashes(table.column("band")),
                micro_days.astype(np.uint64),
                limit,
            ):
                h = _mix(h ^ part) + np.uint64(0x9E3779B97F4A7C15)
        return h.view(np.int64)


class CandidIndex(_SortedRuns):
    """A set of alert candids (one per alert)."""

    def add_new_candids(self, candids: np.ndarray) -> np.ndarray:
        return PointKeyIndex._take_new(self, candids.astype(np.int64))
