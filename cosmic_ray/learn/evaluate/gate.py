"""The promotion gate: does a candidate model beat production on the same objects?

A paired bootstrap of the gain in a metric (:func:`paired_bootstrap`) and the decision on it
(:func:`gate_decision`); the registry (:func:`cosmic_ray.learn.registry.promote_if_better`) calls both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cosmic_ray.learn.evaluate.metrics import METRICS, bootstrap_interval


@dataclass(frozen=True)
class PairedBootstrap:
    """The gain of a candidate over production in one metric, with its paired bootstrap interval."""

    metric: str
    candidate: float
    production: float
    delta: float
    ci_low: float
    ci_high: float
    p_not_better: float  # share of resamples where the candidate is not ahead
    n_objects: int
    n_boot: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_bootstrap(
    y_true: np.ndarray,
    pred_candidate: np.ndarray,
    pred_production: np.ndarray,
    classes: list[str],
    metric: str = "macro_f1",
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> PairedBootstrap:
    """Paired bootstrap of ``metric(candidate) - metric(production)`` over the same objects.

    Each resample draws objects with replacement and scores both models on exactly those objects.

    Raises:
        ValueError: the three arrays differ in length or are empty.
        KeyError: ``metric`` is not one of :data:`~cosmic_ray.learn.evaluate.metrics.METRICS`.
    """
    truth = np.asarray(y_true, dtype=object)
    a = np.asarray(pred_candidate, dtype=object)
    b = np.asarray(pred_production, dtype=object)
    if not (len(truth) == len(a) == len(b)) or len(truth) == 0:
        raise ValueError(f"paired bootstrap needs the same non-empty objects: {len(truth)}, {len(a)}, {len(b)}")
    fn = METRICS[metric]
    rng = np.random.default_rng(seed)
    deltas = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, len(truth), len(truth))
        deltas[i] = fn(truth[idx], a[idx], classes) - fn(truth[idx], b[idx], classes)
    cand, prod = fn(truth, a, classes), fn(truth, b, classes)
    lo, hi = bootstrap_interval(deltas, alpha)
    return PairedBootstrap(metric, cand, prod, cand - prod, lo, hi, float(np.mean(deltas <= 0)), len(truth), n_boot)


def gate_decision(result: PairedBootstrap, min_gain: float = 0.0) -> tuple[bool, str]:
    """Promote when the lower end of the paired interval of the gain is above ``min_gain``.

    Returns:
        (promote, a one-line reason that starts with ``beats:`` or ``does not beat:``).
    """
    better = result.ci_low > min_gain
    text = (
        f"{result.metric} {result.candidate:.4f} vs production {result.production:.4f}: "
        f"paired bootstrap gain {result.delta:+.4f} [{result.ci_low:+.4f}, {result.ci_high:+.4f}] "
        f"on {result.n_objects} objects (min gain {min_gain})"
    )
    return better, ("beats: " if better else "does not beat: ") + text
