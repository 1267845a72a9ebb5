"""Per-object context as evaluation arrays: a (N, F) matrix of the context feature fields, masked by mode.

The matrix has one column per :data:`cosmic_ray.core.context.FEATURE_FIELDS` field, NaN where the
field is missing or the mode hides it. The classifier is handed one mapping per object
(:func:`context_rows`); the baseline
appends the columns the mode shows to its light-curve features (:func:`shown_columns`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from cosmic_ray.core.context import FEATURE_FIELDS, visible_fields

ContextLookup = Mapping[str, Mapping[str, Any]]


def lookup_from_table(table: pa.Table | None) -> dict[str, dict[str, Any]] | None:
    """Object id -> its context row, from a merged context table (one row per object); None for no table."""
    if table is None:
        return None
    return {row["object_id"]: row for row in table.to_pylist()}


def context_matrix(object_ids: np.ndarray, lookup: ContextLookup) -> np.ndarray:
    """(N,) object ids -> (N, len(FEATURE_FIELDS)) their context feature fields, NaN where unknown."""
    out = np.full((len(object_ids), len(FEATURE_FIELDS)), np.nan)
    for i, oid in enumerate(object_ids):
        row = lookup.get(str(oid))
        if row is None:
            continue
        for j, name in enumerate(FEATURE_FIELDS):
            value = row.get(name)
            if value is not None:
                out[i, j] = float(value)
    return out


def mask_matrix(matrix: np.ndarray, mode: str) -> np.ndarray:
    """``matrix`` with the columns ``mode`` hides set to NaN (a copy)."""
    shown = set(visible_fields(mode))
    out = np.array(matrix, dtype=float, copy=True)
    for j, name in enumerate(FEATURE_FIELDS):
        if name not in shown:
            out[:, j] = np.nan
    return out


def context_rows(matrix: np.ndarray | None) -> list[dict[str, float | None]] | None:
    """One mapping of FEATURE_FIELDS per row of an already masked matrix (NaN -> None), as the classifier
    takes them (the values :func:`~cosmic_ray.core.context.masked` gives); None without context."""
    if matrix is None:
        return None
    return [
        {name: (None if not np.isfinite(v) else float(v)) for name, v in zip(FEATURE_FIELDS, row, strict=True)}
        for row in matrix
    ]


def shown_columns(matrix: np.ndarray | None, shown: tuple[str, ...]) -> np.ndarray | None:
    """(N, len(shown)) the columns of the fields ``shown``; None when there is no context or nothing is shown."""
    if matrix is None or not shown:
        return None
    return matrix[:, [FEATURE_FIELDS.index(name) for name in shown]]
