"""The decision rule's parts that are plain numpy: the tuned prior weight and the light curve's age.

* :func:`tune_prior_weight`: the weight of ``log(class prior count)`` in the logits, chosen for
  macro-F1 on the training objects with leave-one-out prototypes (no test object is read).
* :func:`prototype_span`: the directions that separate the known classes (the open-set score's subspace).
* :func:`ages_from_sequences` and :func:`age_bucket`: a light curve's age (days from its first
  detection to its last) and which age-matched prototype set (3, 10, 30 days or ``full``) reads it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Ages (days after the first detection) with prototype sets of their own; older light curves use
#: the full ones.
AGE_BUCKETS: tuple[int, ...] = (3, 10, 30)
FULL = "full"

#: The prior weights :func:`tune_prior_weight` tries.
PRIOR_WEIGHT_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


def macro_f1_of(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Macro-F1 over the classes present in ``truth`` (integer labels)."""
    f1s = []
    for k in np.unique(truth):
        tp = float(np.sum((pred == k) & (truth == k)))
        fp = float(np.sum((pred == k) & (truth != k)))
        fn = float(np.sum((pred != k) & (truth == k)))
        f1s.append(2 * tp / max(2 * tp + fp + fn, 1e-12))
    return float(np.mean(f1s)) if f1s else 0.0


def leave_one_out(d2: np.ndarray, labels: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Squared distances to the own class's prototype as if the object were not in it.

    With the prototype the mean of ``n`` members, removing one member ``x`` moves it to
    ``(n p - x) / (n - 1)`` and ``|x - p'|^2 = (n / (n - 1))^2 |x - p|^2``.

    Args:
        d2: (N, K) squared distances to the prototypes.
        labels: (N,) each object's class.
        members: (K,) objects each prototype is the mean of.
    """
    out = np.array(d2, dtype=np.float64, copy=True)
    n = np.asarray(members, dtype=np.float64)[labels]
    factor = np.where(n > 1, (n / np.maximum(n - 1.0, 1.0)) ** 2, 1e6)  # a class of one cannot recognise itself
    out[np.arange(len(labels)), labels] *= factor
    return out


def tune_prior_weight(
    d2: np.ndarray, labels: np.ndarray, counts: np.ndarray, grid: Sequence[float] = PRIOR_WEIGHT_GRID
) -> tuple[float, dict[str, float]]:
    """The prior weight with the best macro-F1 of ``argmax(-d2 / 2 + w log(count))``.

    Ties go to the weight nearest 1 (the Bayes rule with these priors).

    Args:
        d2: (N, K) leave-one-out squared distances of the training objects (:func:`leave_one_out`).
        labels: (N,) their classes.
        counts: (K,) class prior counts.

    Returns:
        (weight, {weight: macro-F1}).
    """
    log_counts = np.log(np.maximum(np.asarray(counts, dtype=np.float64), 1e-9))
    scores = {}
    for w in grid:
        pred = np.argmax(-0.5 * d2 + w * log_counts, axis=1)
        scores[f"{w:g}"] = macro_f1_of(labels, pred, d2.shape[1])
    best = max(grid, key=lambda w: (round(scores[f"{w:g}"], 6), -abs(w - 1.0)))
    return float(best), scores


def ages_from_sequences(seq: np.ndarray, length: np.ndarray, t_scale_days: float) -> np.ndarray:
    """(N, L, C), (N,) -> (N,) days from each light curve's first detection to its last point read.

    The sequence's first channel is days since the first detection / ``t_scale_days``
    (:func:`~cosmic_ray.learn.features.object_arrays`).
    """
    seq = np.asarray(seq)
    if len(seq) == 0:
        return np.zeros(0)
    last = np.clip(np.asarray(length, dtype=np.int64) - 1, 0, seq.shape[1] - 1)
    return np.asarray(seq[np.arange(len(seq)), last, 0], dtype=np.float64) * t_scale_days


def age_bucket(ages: np.ndarray, buckets: Sequence[int] = AGE_BUCKETS) -> np.ndarray:
    """(N,) ages in days -> (N,) the prototype set that reads each: the smallest bucket at least
    that old (``"3"``, ``"10"``, ``"30"``), ``"full"`` beyond the last."""
    ages = np.asarray(ages, dtype=np.float64)
    out = np.full(len(ages), FULL, dtype=object)
    for days in sorted(buckets, reverse=True):
        out[ages <= days + 1e-6] = str(days)
    return out


def prototype_span(protos: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """(D, r) orthonormal basis of the span of the prototypes about their (unweighted) mean, (K, D) -> r <= K - 1."""
    centred = np.asarray(protos, dtype=np.float64) - np.mean(protos, axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    keep = sv > tol * max(float(sv.max(initial=0.0)), 1e-12)
    return vt[keep].T.astype(np.float32)  # (D, r)
