"""Per-object context (host galaxy, Galactic position, redshift) as model inputs.

The context of an object is a mapping of :data:`~cosmic_ray.core.context.FEATURE_FIELDS` to a value
or ``None`` (:func:`~cosmic_ray.core.context.masked` hides what a mode does not show). Here it becomes

* a matrix of transformed values, NaN where a field is missing (:func:`context_matrix`); right
  ascension and declination are never read;
* the learned encoder's input: standardised values with missing ones at 0 **and** one missing-value
  indicator per field (:func:`encoder_inputs`), so a missing host is not a median host that looks
  like an SN Ia's; during training fields are dropped at random (:func:`field_dropout`) so one
  model works with none, some or all of them;
* the fixed context block of the decision rule (:class:`ContextBlock`): class means and a pooled
  within-class covariance of the standardised fields; the squared (Mahalanobis) distance of an
  object to a class is read over the fields it has only (the Gaussian marginal), so a missing
  field favours no class.

numpy only at import (the training workers import it: :mod:`cosmic_ray.core.context` builds a
pyarrow schema, so it is imported where a mapping is read, not here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The transformed value of each field (monotone maps that tame skewed fields).
_TRANSFORMS: dict[str, Any] = {
    "gal_b": lambda v: np.abs(v),  # degrees from the Galactic plane (north and south alike)
    "a_v": lambda v: np.log10(np.maximum(v, 0.0) + 0.01),
    "host_mag": lambda v: v,
    "host_color": lambda v: np.clip(v, -1.0, 3.0),
    "host_offset_arcsec": lambda v: np.log1p(np.maximum(v, 0.0)),
    "nuclear_dist_arcsec": lambda v: np.log1p(np.maximum(v, 0.0)),
    "redshift": lambda v: np.log10(np.maximum(v, 1e-3)),
}

ContextLike = Mapping[str, Any] | None


def context_matrix(
    contexts: Sequence[ContextLike] | None, n: int, mode: str = "alert_time", fields: Sequence[str] | None = None
) -> np.ndarray:
    """(N, F) transformed context values, NaN where a field is missing or hidden by ``mode``.

    Args:
        contexts: one mapping (or ``None``: nothing known) per object; ``None`` for all of them.
        n: the number of objects (used when ``contexts`` is ``None``).
        mode: a context mode (:data:`~cosmic_ray.core.context.MODES`); hides fields.
        fields: the fields to read, in order (a subset of ``FEATURE_FIELDS``, default all; never ra/dec).

    Raises:
        ValueError: an unknown mode or field, or as many contexts as objects were not given.
    """
    # deferred: core.context builds a pyarrow schema; the training path has torch + ray + numpy only
    from cosmic_ray.core.context import FEATURE_FIELDS, masked

    fields = FEATURE_FIELDS if fields is None else tuple(fields)
    unknown = [f for f in fields if f not in _TRANSFORMS]
    if unknown:
        raise ValueError(f"not context feature fields: {unknown}; known: {list(FEATURE_FIELDS)}")
    out = np.full((n, len(fields)), np.nan, dtype=np.float64)
    if contexts is None:
        masked(None, mode)  # validates the mode
        return out
    if len(contexts) != n:
        raise ValueError(f"{len(contexts)} contexts for {n} objects")
    for i, ctx in enumerate(contexts):
        shown = masked(ctx, mode)
        for j, name in enumerate(fields):
            value = shown[name]
            if value is not None and np.isfinite(value):
                out[i, j] = float(_TRANSFORMS[name](np.float64(value)))
    return out


def hide(matrix: np.ndarray, mode: str, fields: Sequence[str] | None = None) -> np.ndarray:
    """A copy of a :func:`context_matrix` (columns ``fields``, default all) with the fields ``mode`` does not show set to NaN."""
    # deferred: core.context builds a pyarrow schema; the training path has torch + ray + numpy only
    from cosmic_ray.core.context import FEATURE_FIELDS, visible_fields

    fields = FEATURE_FIELDS if fields is None else tuple(fields)
    shown = set(visible_fields(mode))
    out = np.array(matrix, dtype=np.float64, copy=True)
    for j, name in enumerate(fields):
        if name not in shown:
            out[:, j] = np.nan
    return out


@dataclass(frozen=True)
class ContextStats:
    """Centre and scale of each transformed field on the training objects."""

    mean: np.ndarray  # (F,)
    std: np.ndarray  # (F,)

    def standardise(self, matrix: np.ndarray) -> np.ndarray:
        """(N, F) transformed values -> standardised, clipped to +-5, NaN kept."""
        with np.errstate(invalid="ignore"):
            return np.clip((np.asarray(matrix, dtype=np.float64) - self.mean) / self.std, -5.0, 5.0)


def context_stats(matrix: np.ndarray) -> ContextStats:
    """Per-field mean and sd over the objects that have the field (0 / 1 for a field nobody has)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    present = np.isfinite(matrix)
    count = present.sum(axis=0)
    filled = np.where(present, matrix, 0.0)
    mean = np.where(count > 0, filled.sum(axis=0) / np.maximum(count, 1), 0.0)
    var = np.where(present, (matrix - mean) ** 2, 0.0).sum(axis=0) / np.maximum(count - 1, 1)
    std = np.where((count > 1) & (var > 1e-12), np.sqrt(var), 1.0)
    return ContextStats(mean.astype(np.float64), std.astype(np.float64))


def encoder_inputs(standardised: np.ndarray) -> np.ndarray:
    """(N, F) standardised values (NaN missing) -> (N, 2F) ``[values with 0 where missing, missing indicators]``."""
    x = np.asarray(standardised, dtype=np.float32)
    missing = ~np.isfinite(x)
    return np.concatenate([np.where(missing, 0.0, x), missing.astype(np.float32)], axis=1).astype(np.float32)


def field_dropout(
    standardised: np.ndarray, rate: float, rng: np.random.Generator, all_rate: float | None = None
) -> np.ndarray:
    """Hide context fields at random (training): each present field with probability ``rate``, and
    every field of an object with probability ``all_rate`` (default ``rate / 2``: light curve only).

    Returns a copy; NaN marks a hidden field.
    """
    x = np.array(standardised, dtype=np.float32, copy=True)
    if rate <= 0 and not all_rate:
        return x
    all_rate = rate / 2.0 if all_rate is None else all_rate
    drop = rng.random(x.shape) < rate
    drop |= (rng.random(len(x)) < all_rate)[:, None]
    x[drop] = np.nan
    return x


@dataclass
class ContextBlock:
    """The fixed context part of the decision rule: class means and a pooled covariance of standardised fields.

    ``distances(x, means)`` is the Mahalanobis squared distance of each object to each mean over the
    fields that object has (the marginal of the pooled within-class Gaussian); missing fields add
    nothing, for every class alike.
    """

    covariance: np.ndarray  # (F, F) pooled within-class covariance of the standardised fields (shrunk)

    def prototypes(self, standardised: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
        """(K, F) class means over the objects that have each field; 0 (the pooled mean) where none has it."""
        out = np.zeros((n_classes, standardised.shape[1]), dtype=np.float64)
        for k in range(n_classes):
            out[k] = mean_present(standardised[labels == k])
        return out

    def distances(self, standardised: np.ndarray, means: np.ndarray) -> np.ndarray:
        """(N, F), (K, F) -> (N, K) squared distances over each object's present fields."""
        x = np.asarray(standardised, dtype=np.float64)
        means = np.nan_to_num(np.asarray(means, dtype=np.float64), nan=0.0)
        out = np.zeros((len(x), len(means)), dtype=np.float64)
        present = np.isfinite(x)
        patterns, inverse = np.unique(present, axis=0, return_inverse=True)
        for p, pattern in enumerate(patterns):
            if not pattern.any():
                continue
            rows = np.flatnonzero(inverse.ravel() == p)
            cols = np.flatnonzero(pattern)
            chol = np.linalg.cholesky(self.covariance[np.ix_(cols, cols)])  # (S, S)
            diff = x[np.ix_(rows, cols)][:, None, :] - means[:, cols][None, :, :]  # (n, K, S)
            z = np.linalg.solve(chol, diff.reshape(-1, len(cols)).T)  # (S, n * K)
            out[rows] = np.square(z).sum(axis=0).reshape(len(rows), len(means))
        return out

    def present_counts(self, standardised: np.ndarray) -> np.ndarray:
        """(N,) how many fields each object has (the degrees of freedom of its distances)."""
        return np.isfinite(np.asarray(standardised)).sum(axis=1)


def mean_present(rows: np.ndarray) -> np.ndarray:
    """(N, F) -> (F,) mean over the rows that have each field; 0 where none has it."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or len(rows) == 0:
        return np.zeros(rows.shape[-1] if rows.ndim == 2 else 0)
    present = np.isfinite(rows)
    count = present.sum(axis=0)
    return np.where(count > 0, np.where(present, rows, 0.0).sum(axis=0) / np.maximum(count, 1), 0.0)


def fit_context_block(standardised: np.ndarray, labels: np.ndarray, shrinkage: float = 0.2) -> ContextBlock | None:
    """A :class:`ContextBlock` from the standardised training context; ``None`` if no object has any.

    The pooled within-class covariance is computed from pairwise-complete residuals about the class
    means, shrunk towards its diagonal (``(1 - s) C + s diag(C)``) and kept positive definite.
    """
    x = np.asarray(standardised, dtype=np.float64)
    if not np.isfinite(x).any():
        return None
    labels = np.asarray(labels)
    classes = np.unique(labels)
    resid = np.full_like(x, np.nan)
    for c in classes:
        sel = labels == c
        resid[sel] = x[sel] - mean_present(x[sel])
    present = np.isfinite(resid)
    r = np.where(present, resid, 0.0)
    pairs = present.astype(np.float64).T @ present.astype(np.float64)  # (F, F) objects with both fields
    cov = (r.T @ r) / np.maximum(pairs - 1.0, 1.0)
    diag = np.where(np.diag(pairs) > 1, np.diag(cov), 1.0)
    diag = np.where(diag > 1e-6, diag, 1.0)
    cov[np.diag_indices_from(cov)] = diag
    cov = (1.0 - shrinkage) * cov + shrinkage * np.diag(diag)
    values, vectors = np.linalg.eigh(cov)
    cov = (vectors * np.maximum(values, 1e-3 * values.max())) @ vectors.T
    return ContextBlock(covariance=0.5 * (cov + cov.T))
