"""Open set with every class held out in turn (``open_set_auroc_by_class``), and the follow-up figure.

``open_set_auroc`` (:mod:`~cosmic_ray.learn.evaluate.report`) holds out the rare classes (those
registered from examples). Here each evaluated class c is held out in turn: the known classes are
the model's base classes but c, c's objects are the positives and the objects of the known
classes the negatives; the AUROC of the open-set score (ProtoNet: the classifier's raw
``novelty`` against the known prototypes; baseline: 1 - highest probability of a forest trained
on the known classes; NaN when fewer than two classes are left). For a rare class this is its
term of ``open_set_auroc``.

``followup``: per class, the share of its objects in the top 1, 5 and 10% of all objects ranked
by that class's probability (mean over draws) — how much of a class a follow-up list of that
length would catch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from cosmic_ray.core.context import DEFAULT_MODE
from cosmic_ray.learn.evaluate.inputs import LabelledArrays
from cosmic_ray.learn.evaluate.metrics import auroc
from cosmic_ray.learn.evaluate.scorers import Scored, baseline_forest, baseline_inputs

if TYPE_CHECKING:
    from cosmic_ray.learn.classifier import ProtoNetClassifier

FOLLOWUP_TOP = {"top1": 0.01, "top5": 0.05, "top10": 0.10}


def _by_class(
    score_for: dict[str, np.ndarray], data: LabelledArrays, classes: list[str], base: list[str]
) -> dict[str, float]:
    """Class -> AUROC of its objects against the known classes' objects, from each held-out class's scores."""
    out: dict[str, float] = {}
    for c in classes:
        known = [b for b in base if b != c]
        pos, neg = data.coarse == c, np.isin(data.coarse, known)
        if c not in score_for or not pos.any() or not neg.any():
            out[c] = float("nan")
            continue
        out[c] = auroc(score_for[c][pos], score_for[c][neg])
    return out


def protonet_open_set_by_class(
    classifier: ProtoNetClassifier,
    data: LabelledArrays,
    classes: list[str],
    rare: list[str],
    mode: str = DEFAULT_MODE,
) -> dict[str, float]:
    """Every class held out in turn (module docstring), ProtoNet's raw novelty; NaN where a side is empty."""
    base = [c for c in classifier.class_names if c not in rare]
    rows = {c: classifier.class_names.index(c) for c in base}
    counts = classifier.counts()
    emb = classifier.embed(data.seq, data.length, data.feats, data.contexts, mode)  # (N, D)
    score_for: dict[str, np.ndarray] = {}
    for c in classes:
        known = [rows[b] for b in base if b != c]
        if known:
            score_for[c] = classifier.novelty(emb, classifier.prototypes[known], counts[known])  # (N,)
    return _by_class(score_for, data, classes, base)


def baseline_open_set_by_class(
    train: LabelledArrays,
    data: LabelledArrays,
    classes: list[str],
    rare: list[str],
    seed: int = 0,
    scored: Scored | None = None,
) -> dict[str, float]:
    """Every class held out in turn, the baseline's 1 - highest probability (one forest per known set).

    A rare class's known set is all the base classes: its scores are taken from ``scored`` (the
    baseline's own leave-one-class-out, :func:`~cosmic_ray.learn.evaluate.scorers.score_baseline`) when given.
    """
    base = sorted(set(train.coarse) & {c for c in classes if c not in rare})
    x_train, x_data = baseline_inputs(train), baseline_inputs(data)
    cache: dict[tuple[str, ...], np.ndarray] = {}
    score_for: dict[str, np.ndarray] = {}
    reused: dict[str, float] = {}
    for c in classes:
        known = tuple(b for b in base if b != c)
        if scored is not None and c in rare and c in scored.open_pos:
            reused[c] = auroc(scored.open_pos[c], scored.open_neg[c])
            continue
        if len(known) < 2:  # a forest needs two classes: not measurable (NaN)
            continue
        if known not in cache:
            rows = np.isin(train.coarse, known)
            forest = baseline_forest(seed).fit(x_train[rows], train.coarse[rows].astype(str))
            cache[known] = 1.0 - forest.predict_proba(x_data).max(axis=1)
        score_for[c] = cache[known]
    return {**_by_class(score_for, data, classes, base), **reused}


def followup_summary(scored: Scored, top: dict[str, float] = FOLLOWUP_TOP) -> dict[str, Any]:
    """Class -> ``{top1, top5, top10}``: share of its objects among the top 1/5/10% by its probability (mean over draws).

    A class whose probability is missing in every draw (a rare class without support) is left out.
    """
    out: dict[str, Any] = {}
    n = len(scored.truth)
    for c, scores in scored.class_scores.items():
        mine = scored.truth == c
        ok = [d for d in range(len(scores)) if np.isfinite(scores[d]).all()]
        if not mine.any() or not ok:
            continue
        out[c] = {
            name: float(
                np.mean(
                    [
                        mine[np.argsort(-scores[d], kind="stable")[: max(1, int(round(frac * n)))]].sum() / mine.sum()
                        for d in ok
                    ]
                )
            )
            for name, frac in top.items()
        }
    return out
