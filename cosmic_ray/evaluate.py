"""Closed-set and open-set metrics (pure numpy / scikit-learn)."""

from __future__ import annotations

import numpy as np


def classification_metrics(y_true: list[str] | np.ndarray, y_pred: list[str] | np.ndarray, classes: list[str]) -> dict:
    """Per-class precision/recall/F1/support, macro-F1 and balanced accuracy over ``classes``."""
    from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    present = s > 0
    return {
        "classes": {c: {"precision": float(pi), "recall": float(ri), "f1": float(fi), "support": int(si)} for c, pi, ri, fi, si in zip(classes, p, r, f, s)},
        "macro_f1": float(np.mean(f[present])) if present.any() else 0.0,
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
    }
