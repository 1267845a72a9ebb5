"""Paired bootstrap of the difference between two models scored on the same objects.

Both models' predictions are resampled with the same object indices (class-stratified, as
:func:`~cosmic_ray.learn.evaluate.report.bootstrap_summary`), so the interval of the difference
is much narrower than the two intervals side by side: a difference whose 95% interval excludes
zero is one the data show.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cosmic_ray.learn.evaluate.metrics import auroc, bootstrap_interval, macro_f1
from cosmic_ray.learn.evaluate.scorers import Scored


def _mean_f1(truth: np.ndarray, preds: np.ndarray, classes: list[str]) -> float:
    return float(np.mean([macro_f1(truth, preds[d], classes) for d in range(preds.shape[0])]))


def paired_difference(a: Scored, b: Scored, n_boot: int = 500, seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """Figures of ``a`` minus those of ``b`` (same objects, same order): point value and interval.

    Returns:
        ``macro_f1``, ``by_phase.<days>.macro_f1`` and ``open_set_auroc`` -> ``{"diff", "interval"}``.

    Raises:
        ValueError: the two were not scored on the same objects.
    """
    if not np.array_equal(a.truth, b.truth):
        raise ValueError("paired bootstrap needs both models scored on the same objects in the same order")
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(a.truth == c) for c in np.unique(a.truth)]
    phase_by_class = {d: [np.flatnonzero(t == c) for c in np.unique(t)] for d, t in a.phase_truth.items()}

    def auroc_of(s: Scored, pick: dict[str, tuple[np.ndarray, np.ndarray]] | None) -> float:
        vals = []
        for c in s.open_pos:
            pos, neg = s.open_pos[c], s.open_neg.get(c, np.zeros(0))
            if pick is not None:
                if c not in pick:
                    continue
                pos, neg = pos[pick[c][0]], neg[pick[c][1]]
            if len(pos) and len(neg):
                vals.append(auroc(pos, neg))
        return float(np.mean(vals)) if vals else float("nan")

    point = {"macro_f1": _mean_f1(a.truth, a.preds, a.classes) - _mean_f1(b.truth, b.preds, b.classes)}
    for d in a.phase_truth:
        point[f"by_phase.{d}.macro_f1"] = _mean_f1(a.phase_truth[d], a.phase_preds[d], a.classes) - _mean_f1(
            b.phase_truth[d], b.phase_preds[d], b.classes
        )
    paired_open = set(a.open_pos) == set(b.open_pos) and all(
        len(a.open_pos[c]) == len(b.open_pos[c]) and len(a.open_neg[c]) == len(b.open_neg[c]) for c in a.open_pos
    )
    if paired_open:
        point["open_set_auroc"] = auroc_of(a, None) - auroc_of(b, None)
    reps: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(m, len(m)) for m in by_class])
        t = a.truth[idx]
        reps["macro_f1"].append(_mean_f1(t, a.preds[:, idx], a.classes) - _mean_f1(t, b.preds[:, idx], b.classes))
        for d, members in phase_by_class.items():
            j = np.concatenate([rng.choice(m, len(m)) for m in members])
            tt = a.phase_truth[d][j]
            reps[f"by_phase.{d}.macro_f1"].append(
                _mean_f1(tt, a.phase_preds[d][:, j], a.classes) - _mean_f1(tt, b.phase_preds[d][:, j], b.classes)
            )
        if paired_open:
            pick = {
                c: (
                    rng.integers(0, len(a.open_pos[c]), len(a.open_pos[c])),
                    rng.integers(0, len(a.open_neg[c]), len(a.open_neg[c])),
                )
                for c in a.open_pos
                if len(a.open_pos[c]) and len(a.open_neg[c])
            }
            reps["open_set_auroc"].append(auroc_of(a, pick) - auroc_of(b, pick))
    return {
        k: {"diff": float(point[k]), "interval": [float(x) for x in bootstrap_interval(np.asarray(v), alpha)]}
        for k, v in reps.items()
    }
