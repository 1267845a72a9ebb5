"""Plain metrics: per-class precision/recall/F1, macro-F1, balanced accuracy, AUROC, bootstrap intervals.

Pure numpy functions on label arrays; the gate (:mod:`~cosmic_ray.learn.evaluate.gate`) and the
report (:mod:`~cosmic_ray.learn.evaluate.report`) build on them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def classification_metrics(
    y_true: list[str] | np.ndarray, y_pred: list[str] | np.ndarray, classes: list[str]
) -> dict[str, Any]:
    """Per-class precision/recall/F1/support, macro-F1 and balanced accuracy over ``classes``.

    Macro-F1 and balanced accuracy average over the classes of ``classes`` present in ``y_true``.

    Returns:
        ``{"classes": {name: {precision, recall, f1, support}}, "macro_f1", "balanced_accuracy", "accuracy"}``.
    """
    # deferred: scikit-learn is heavy and the gate, which imports this module, needs only numpy
    from sklearn.metrics import precision_recall_fscore_support

    truth = np.asarray(y_true, dtype=object)
    pred = np.asarray(y_pred, dtype=object)
    p, r, f, s = precision_recall_fscore_support(truth, pred, labels=classes, zero_division=0)
    present = s > 0
    return {
        "classes": {
            c: {"precision": float(pi), "recall": float(ri), "f1": float(fi), "support": int(si)}
            for c, pi, ri, fi, si in zip(classes, p, r, f, s, strict=False)
        },
        "macro_f1": float(np.mean(f[present])) if present.any() else 0.0,
        "balanced_accuracy": float(np.mean(r[present])) if present.any() else 0.0,
        "accuracy": float(np.mean(truth == pred)) if len(truth) else 0.0,
    }


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> float:
    """Macro-F1 over the classes present in ``y_true`` (numpy only, fast enough to bootstrap)."""
    scores = []
    for c in classes:
        t, p = y_true == c, y_pred == c
        if not t.any():
            continue
        tp = np.sum(t & p)
        denom = t.sum() + p.sum()
        scores.append(2.0 * tp / denom if denom else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> float:
    """Mean recall over the classes present in ``y_true``."""
    recalls = [np.mean(y_pred[y_true == c] == c) for c in classes if np.any(y_true == c)]
    return float(np.mean(recalls)) if recalls else 0.0


METRICS: dict[str, Callable[[np.ndarray, np.ndarray, list[str]], float]] = {
    "macro_f1": macro_f1,
    "balanced_accuracy": balanced_accuracy,
}


def auroc(positive: np.ndarray | list[float], negative: np.ndarray | list[float]) -> float:
    """P(score of a positive > score of a negative), ties counting one half (Mann-Whitney U).

    Returns:
        The AUROC, NaN when either side is empty.
    """
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    both = np.concatenate([pos, neg])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(len(both))
    sorted_scores = both[order]
    # average ranks over ties
    starts = np.flatnonzero(np.concatenate([[True], sorted_scores[1:] != sorted_scores[:-1]]))
    ends = np.concatenate([starts[1:], [len(both)]])
    for s, e in zip(starts, ends, strict=False):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def bootstrap_interval(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaNs ignored; NaN, NaN when none is finite)."""
    finite = np.asarray(values, float)
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    return float(np.quantile(finite, alpha / 2)), float(np.quantile(finite, 1 - alpha / 2))
