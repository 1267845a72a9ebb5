"""Active anomaly detection: an isolation forest whose ranking learns from experts' answers.

In the spirit of Fink's AAD (Ishida et al. 2021, Pruzhinskaya et al. 2023), with coniferest's
forests: :class:`coniferest.aadforest.AADForest` (Das et al.'s AAD: leaf weights re-fitted so that
answered anomalies score high and answered nominals low) or :class:`coniferest.pineforest.PineForest`
(trees that isolate answered nominals early are dropped). Without answers both are a plain
isolation forest, which is also the no-feedback baseline (``method="iforest"``).

Inputs are the per-object features of :func:`cosmic_ray.learn.features.featurize` (``feats``,
(N, F), NaN where a feature is missing), made robust first by :func:`prepare`.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(200, 4)); x[7] += 8
    >>> ranker = AnomalyRanker(x, seed=0)
    >>> int(ranker.ranking()[0])
    7
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Literal

import numpy as np
from coniferest.aadforest import AADForest
from coniferest.isoforest import IsolationForest
from coniferest.label import Label
from coniferest.pineforest import PineForest

log = logging.getLogger(__name__)

Method = Literal["aad", "pine", "iforest"]
METHODS: tuple[str, ...] = ("aad", "pine", "iforest")


def prepare(feats: np.ndarray, clip: float = 10.0) -> np.ndarray:
    """Robust-standardised features: (x - median) / IQR per column, NaN -> 0 (the median), clipped.

    Parametric rise/fade times can be ~1e6 days on sparse bands; the IQR scale and the clip keep
    one such feature from owning the forest's splits.

    Args:
        feats: (N, F) features, NaN where missing.

    Returns:
        (N, F) float32, finite.
    """
    x = np.asarray(feats, dtype=np.float64)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing feature: its median is NaN -> 0
        med = np.nanmedian(x, axis=0)
        q75, q25 = np.nanpercentile(x, 75, axis=0), np.nanpercentile(x, 25, axis=0)
    med = np.nan_to_num(med, nan=0.0)
    scale = q75 - q25
    scale = np.where(np.isfinite(scale) & (scale > 1e-9), scale, 1.0)
    z = np.nan_to_num((x - med) / scale, nan=0.0, posinf=clip, neginf=-clip)
    return np.clip(z, -clip, clip).astype(np.float32)


class AnomalyRanker:
    """Rank objects by how anomalous they are, re-ranked after each batch of expert answers.

    Args:
        feats: (N, F) features of the objects to rank (raw: :func:`prepare` is applied here).
        method: ``aad`` (default), ``pine``, or ``iforest`` (answers are ignored: the baseline).
        seed: the forest's random seed.
        n_trees: trees in the forest.
    """

    def __init__(self, feats: np.ndarray, method: Method = "aad", seed: int = 0, n_trees: int = 100):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
        self.method = method
        self.data = prepare(feats)  # (N, F)
        n_sub = int(min(256, len(self.data)))
        if method == "aad":
            self.forest: AADForest | PineForest | IsolationForest = AADForest(
                n_trees=n_trees, n_subsamples=n_sub, random_seed=seed, n_jobs=1
            )
        elif method == "pine":
            self.forest = PineForest(n_trees=n_trees, n_subsamples=n_sub, random_seed=seed, n_jobs=1)
        else:
            self.forest = IsolationForest(n_trees=n_trees, n_subsamples=n_sub, random_seed=seed, n_jobs=1)
        self.forest.fit(self.data)
        self.answers: dict[int, bool] = {}
        self._scores = self._score()

    def _score(self) -> np.ndarray:
        # coniferest: lower score_samples = more anomalous; ours: higher = more anomalous
        return -np.asarray(self.forest.score_samples(self.data), dtype=np.float64)

    def learn(self, answers: Mapping[int, bool]) -> None:
        """Take answers (row index -> interesting?) and re-rank; ``iforest`` keeps its ranking."""
        self.answers.update({int(k): bool(v) for k, v in answers.items()})
        if self.method == "iforest" or not self.answers:
            return
        rows = np.fromiter(self.answers, dtype=np.int64)
        labels = np.asarray([Label.ANOMALY if self.answers[r] else Label.REGULAR for r in rows], dtype=np.int64)
        self.forest.fit_known(self.data, self.data[rows], labels)
        self._scores = self._score()

    def scores(self) -> np.ndarray:
        """(N,) anomaly scores, higher = more anomalous."""
        return self._scores.copy()

    def ranking(self, unseen_only: bool = False) -> np.ndarray:
        """Row indices from most to least anomalous (without answered rows if ``unseen_only``)."""
        order = np.argsort(-self._scores, kind="stable")
        if unseen_only and self.answers:
            order = order[~np.isin(order, np.fromiter(self.answers, dtype=np.int64))]
        return order
