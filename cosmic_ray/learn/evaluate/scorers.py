"""ProtoNet and baseline predictions on the same objects with the same support draws.

* Classes absent from the model (the rare, support-only ones, and those registered after
  training, ``meta["registered_classes"]``, when the support has them) get a prototype from ``k``
  objects drawn from the support table, ``draws`` times (seeded); see
  :func:`~cosmic_ray.learn.evaluate.inputs.support_draws`.
* Open set, leave-one-class-out over the rare classes: with no prototype for class c, c's objects
  are the positives and the objects of the base classes the negatives. The ProtoNet's score is
  the classifier's raw ``novelty`` (minus the log-density under the prior-weighted mixture of the
  base-class prototypes; the calibrated ``open_set_score`` is a monotone function of it that
  saturates at 1; ranking the raw score keeps ties out).
* The baseline: light-curve features + balanced random forest (the ALeRCE approach) trained on
  the training table plus the same support draws (open-set score: 1 - highest class probability).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cosmic_ray.learn.decision import FULL
from cosmic_ray.learn.evaluate.context import shown_columns
from cosmic_ray.learn.evaluate.inputs import EvaluationInputs, LabelledArrays, support_draws

if TYPE_CHECKING:
    from cosmic_ray.learn.classifier import ProtoNetClassifier


@dataclass
class Scored:
    """Predictions of one model (ProtoNet or baseline) on one evaluation set, per support draw."""

    classes: list[str]
    truth: np.ndarray  # (N,) coarse labels
    preds: np.ndarray  # (draws, N)
    phase_truth: dict[str, np.ndarray] = field(default_factory=dict)  # days -> (N_p,)
    phase_preds: dict[str, np.ndarray] = field(default_factory=dict)  # days -> (draws, N_p)
    open_pos: dict[str, np.ndarray] = field(default_factory=dict)  # rare class -> open-set scores of its objects
    open_neg: dict[str, np.ndarray] = field(default_factory=dict)  # rare class -> scores of base-class objects
    rare_scores: dict[str, np.ndarray] = field(default_factory=dict)  # rare class -> (draws, N) its probability
    class_scores: dict[str, np.ndarray] = field(default_factory=dict)  # every class -> (draws, N) its probability


def concat_scored(parts: list[Scored]) -> Scored:
    """Pool the out-of-fold predictions of several folds (same classes and draws)."""
    first = parts[0]

    def cat(xs: list[np.ndarray], axis: int = 0) -> np.ndarray:
        return np.concatenate(xs, axis=axis)

    return Scored(
        classes=first.classes,
        truth=cat([p.truth for p in parts]),
        preds=cat([p.preds for p in parts], axis=1),
        phase_truth={d: cat([p.phase_truth[d] for p in parts]) for d in first.phase_truth},
        phase_preds={d: cat([p.phase_preds[d] for p in parts], axis=1) for d in first.phase_preds},
        open_pos={c: cat([p.open_pos[c] for p in parts if c in p.open_pos]) for c in first.open_pos},
        open_neg={c: cat([p.open_neg[c] for p in parts if c in p.open_neg]) for c in first.open_neg},
        rare_scores={
            c: cat([p.rare_scores[c] for p in parts], axis=1)
            for c in first.rare_scores
            if all(c in p.rare_scores for p in parts)
        },
        class_scores={
            c: cat([p.class_scores[c] for p in parts], axis=1)
            for c in first.class_scores
            if all(c in p.class_scores for p in parts)
        },
    )


def score_protonet(
    classifier: ProtoNetClassifier,
    data: LabelledArrays,
    phases: dict[str, LabelledArrays],
    support: LabelledArrays | None,
    rare: list[str],
    draws: list[dict[str, np.ndarray]],
    classes: list[str],
    mode: str = "alert_time",
    age_matched: bool = False,
    support_phases: dict[str, LabelledArrays] | None = None,
) -> Scored:
    """ProtoNet predictions per draw.

    Every object's context (``LabelledArrays.contexts``) is read through ``mode``. With
    ``age_matched`` (and a model with age-matched prototype sets) each light curve is read by the
    prototypes of its age; the registered classes' support is then cut at the same ages
    (``support_phases``: days -> the support cut that long after first detection; the full support
    where absent).

    Base prototypes + one registered prototype per rare class (the mean embedding of that draw's
    K support objects, as ``with_class`` computes it), decided by the classifier's own rule
    (:meth:`~cosmic_ray.learn.classifier.ProtoNetClassifier.class_logits`, registered classes at
    the prior count ``with_class`` gives them).
    """

    def embed(a: LabelledArrays) -> np.ndarray:
        return classifier.embed(a.seq, a.length, a.feats, getattr(a, "contexts", None), mode)

    base = [c for c in classifier.class_names if c not in rare]
    base_rows = [classifier.class_names.index(c) for c in base]
    base_protos = classifier.prototypes[base_rows]  # (B, D)
    base_counts = classifier.counts()[base_rows]  # (B,)
    registered_count = getattr(classifier.arch, "registered_prior_count", 1.0)
    emb_support = embed(support) if support is not None and len(support) else None

    age_sets = classifier.age_prototypes if age_matched else {}
    support_at: dict[str, tuple[dict[str, int], np.ndarray]] = {}  # bucket -> (object id -> row, embeddings)
    for days, arrays in (support_phases or {}).items():
        if days in age_sets and len(arrays):
            support_at[days] = ({str(o): i for i, o in enumerate(arrays.object_id)}, embed(arrays))

    def rare_proto(rows: np.ndarray, bucket: str) -> np.ndarray:
        assert emb_support is not None and support is not None
        if bucket in support_at:
            index, emb_b = support_at[bucket]
            cut = [index[str(o)] for o in support.object_id[rows] if str(o) in index]
            if cut:
                return classifier.prototype_of(emb_b[cut])[None, :]
        return classifier.prototype_of(emb_support[rows])[None, :]

    def decide(emb: np.ndarray, draw: dict[str, np.ndarray], ages: np.ndarray) -> tuple[list[str], np.ndarray]:
        names, counts = list(base), list(base_counts)
        sets = {bucket: [protos[base_rows]] for bucket, protos in age_sets.items()}
        sets[FULL] = [base_protos]
        for c in rare:
            if c in draw and emb_support is not None:
                names.append(c)
                counts.append(registered_count)
                for bucket, protos in sets.items():
                    protos.append(rare_proto(draw[c], bucket))
        stacked = {bucket: np.concatenate(protos) for bucket, protos in sets.items()}
        return names, classifier.age_matched_logits(emb, ages if age_sets else None, stacked, np.asarray(counts))

    def predict(emb: np.ndarray, draw: dict[str, np.ndarray], ages: np.ndarray) -> np.ndarray:
        names, logits = decide(emb, draw, ages)
        return np.asarray(names, dtype=object)[logits.argmax(axis=1)]

    emb_data, ages_data = embed(data), classifier.ages(data.seq, data.length)
    scored = Scored(
        classes=classes, truth=data.coarse, preds=np.stack([predict(emb_data, dr, ages_data) for dr in draws])
    )
    decisions = [decide(emb_data, dr, ages_data) for dr in draws]
    scored.rare_scores = _rare_probabilities(decisions, rare, len(data))
    scored.class_scores = _rare_probabilities(decisions, classes, len(data))
    for days, arrays in phases.items():
        emb, ages = embed(arrays), classifier.ages(arrays.seq, arrays.length)
        scored.phase_truth[days] = arrays.coarse
        scored.phase_preds[days] = np.stack([predict(emb, dr, ages) for dr in draws])
    # open set: leave-one-class-out, base prototypes only (the rare class has none)
    novelty = classifier.novelty(emb_data, base_protos, base_counts)  # (N,)
    is_base = np.isin(data.coarse, base)
    for c in rare:
        scored.open_pos[c] = novelty[data.coarse == c]
        scored.open_neg[c] = novelty[is_base]
    return scored


def _rare_probabilities(
    decisions: list[tuple[list[str], np.ndarray]], rare: list[str], n: int
) -> dict[str, np.ndarray]:
    """Rare class -> (draws, N) its posterior probability (softmax of the logits) per object.

    NaN in a draw without that class.
    """
    out = {c: np.full((len(decisions), n), np.nan) for c in rare}
    for d, (names, logits) in enumerate(decisions):
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        for c in rare:
            if c in names:
                out[c][d] = probs[:, list(names).index(c)]
    return out


def baseline_forest(seed: int) -> Any:
    """The baseline classifier: an unfitted balanced random forest (imbalanced-learn), seeded; classes
    above the median size are undersampled to it (:func:`~cosmic_ray.learn.evaluate.baselines.balanced_forest`)."""
    # deferred: the baselines module is only needed where a baseline is fitted
    from cosmic_ray.learn.evaluate.baselines import balanced_forest

    return balanced_forest(seed, np.zeros(0))


def baseline_features(feats: np.ndarray) -> np.ndarray:
    """(N, F) light-curve features as the forest reads them: NaN and infinities made finite."""
    return np.nan_to_num(np.asarray(feats, float), nan=-999.0, posinf=1e6, neginf=-1e6)


def baseline_inputs(a: LabelledArrays) -> np.ndarray:
    """The forest's (N, F [+ shown context fields]) inputs: light-curve features, then the context the mode shows."""
    extra = shown_columns(a.context, a.context_shown)
    return baseline_features(a.feats if extra is None else np.hstack([a.feats, extra]))


def score_baseline(
    train: LabelledArrays,
    data: LabelledArrays,
    phases: dict[str, LabelledArrays],
    support: LabelledArrays | None,
    rare: list[str],
    draws: list[dict[str, np.ndarray]],
    classes: list[str],
    seed: int = 0,
) -> Scored:
    """Balanced random forest on the light-curve features.

    Trained on ``train`` (known classes) plus, per draw, the same K support objects of each rare
    class the ProtoNet gets.
    """
    known = np.isin(train.coarse, [c for c in classes if c not in rare])
    xt, yt = baseline_inputs(train)[known], train.coarse[known]
    xs = baseline_inputs(support) if support is not None else None
    preds: list[np.ndarray] = []
    phase_preds: dict[str, list[np.ndarray]] = {d: [] for d in phases}
    decisions: list[tuple[list[str], np.ndarray]] = []
    for i, draw in enumerate(draws):
        x, y = [xt], [yt]
        if support is not None and xs is not None:  # draws are empty without a support table
            for c, rows in draw.items():
                x.append(xs[rows])
                y.append(np.asarray([c] * len(rows), dtype=object))
        forest = baseline_forest(seed + i).fit(np.concatenate(x), np.concatenate(y).astype(str))
        probs = forest.predict_proba(baseline_inputs(data))
        preds.append(forest.classes_[probs.argmax(axis=1)].astype(object))
        decisions.append((list(forest.classes_), np.log(np.maximum(probs, 1e-12))))
        for days, arrays in phases.items():
            phase_preds[days].append(forest.predict(baseline_inputs(arrays)).astype(object))
    scored = Scored(
        classes=classes,
        truth=data.coarse,
        preds=np.stack(preds),
        phase_truth={d: a.coarse for d, a in phases.items()},
        phase_preds={d: np.stack(v) for d, v in phase_preds.items()},
        rare_scores=_rare_probabilities(decisions, rare, len(data)),
        class_scores=_rare_probabilities(decisions, classes, len(data)),
    )
    # open set: a forest of the base classes alone; score = 1 - highest class probability
    forest = baseline_forest(seed).fit(xt, yt.astype(str))
    score = 1.0 - forest.predict_proba(baseline_inputs(data)).max(axis=1)
    is_base = np.isin(data.coarse, np.unique(yt))
    for c in rare:
        scored.open_pos[c] = score[data.coarse == c]
        scored.open_neg[c] = score[is_base]
    return scored


def score_all(
    classifier: ProtoNetClassifier,
    inputs: EvaluationInputs,
    k: int,
    draws: int,
    seed: int = 0,
    mode: str = "alert_time",
    baseline_models: Sequence[str] | None = None,
    villar: Mapping[str, np.ndarray] | None = None,
) -> tuple[Scored, dict[str, Scored]]:
    """(ProtoNet, every reference model by name) on the same objects with the same support draws.

    ``inputs`` is a view masked for ``mode`` (:func:`~cosmic_ray.learn.evaluate.modes.inputs_in_mode`);
    the classifier and the reference models read the context that mode shows.
    """
    # deferred: baselines imports this module (Scored), so it is imported at call time
    from cosmic_ray.learn.evaluate import baselines

    n_draws = draws if inputs.rare else 1
    chosen = (
        support_draws(inputs.support, inputs.rare, k, n_draws, seed) if inputs.support is not None else [{}] * n_draws
    )
    model = score_protonet(
        classifier, inputs.data, inputs.phases, inputs.support, inputs.rare, chosen, inputs.classes, mode=mode
    )
    names = list(baseline_models) if baseline_models is not None else list(baselines.MODELS)
    return model, baselines.score_baselines(inputs, chosen, mode, names, villar, seed)
