"""Closed-set, few-shot and open-set metrics, the paired-bootstrap gate and the evaluation report.

Pure functions (numpy, pyarrow, scikit-learn, imbalanced-learn): tables and a classifier in,
dicts out. The CLI (``cosmic-ray evaluate``), the training pipeline (gate) and
``bench/fewshot_eval.py`` (cross-validation) call them.

The report (:func:`evaluate_report`) has exactly the keys of the issue::

    model_uri, k, draws, classes {name: {precision, recall, f1, support}}, macro_f1,
    balanced_accuracy, kshot_recall {class: {mean, std}}, open_set_auroc,
    by_phase {days: {macro_f1, balanced_accuracy}}, baseline {the same keys}

* Classes absent from the model (the rare, support-only ones, and those registered after
  training, ``meta["registered_classes"]``, when the support has them) get a prototype from ``k``
  objects drawn from the support table, ``draws`` times (seeded); closed-set figures are the
  mean over draws. Support objects of the same event as a data object are never drawn; objects
  of the data's own survey (ZTF names) are drawn first, catalogue objects make up the rest of K.
* ``open_set_auroc``: leave-one-class-out over the rare classes: with no prototype for class c,
  the open-set score of c's objects against the objects of the base classes (AUROC), averaged
  over the rare classes. The score ranked is the classifier's raw ``novelty`` (minus the
  log-density under the prior-weighted mixture of the base-class prototypes; the calibrated
  ``open_set_score`` is a monotone function of it that saturates at 1; ranking the raw score
  keeps ties out).
* ``by_phase``: every light curve truncated 3, 10 and 30 days after its first detection, and in full.
* ``baseline``: light-curve features + balanced random forest (the ALeRCE approach) trained on
  the training table plus the same support draws, scored the same way (open-set score:
  1 - highest class probability).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PHASES = (3, 10, 30)
REPORT_KEYS = (
    "model_uri",
    "k",
    "draws",
    "classes",
    "macro_f1",
    "balanced_accuracy",
    "kshot_recall",
    "open_set_auroc",
    "by_phase",
    "baseline",
)


# ----------------------------------------------------------------------------- plain metrics


def classification_metrics(y_true: list[str] | np.ndarray, y_pred: list[str] | np.ndarray, classes: list[str]) -> dict:
    """Per-class precision/recall/F1/support, macro-F1 and balanced accuracy over ``classes``.

    Macro-F1 and balanced accuracy average over the classes of ``classes`` present in ``y_true``.
    """
    from sklearn.metrics import precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    present = s > 0
    return {
        "classes": {
            c: {"precision": float(pi), "recall": float(ri), "f1": float(fi), "support": int(si)}
            for c, pi, ri, fi, si in zip(classes, p, r, f, s, strict=False)
        },
        "macro_f1": float(np.mean(f[present])) if present.any() else 0.0,
        "balanced_accuracy": float(np.mean(r[present])) if present.any() else 0.0,
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
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


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting one half (Mann-Whitney U)."""
    positive, negative = np.asarray(positive, float), np.asarray(negative, float)
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    both = np.concatenate([positive, negative])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(len(both))
    sorted_scores = both[order]
    # average ranks over ties
    starts = np.flatnonzero(np.concatenate([[True], sorted_scores[1:] != sorted_scores[:-1]]))
    ends = np.concatenate([starts[1:], [len(both)]])
    for s, e in zip(starts, ends, strict=False):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    u = ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2.0
    return float(u / (len(positive) * len(negative)))


def bootstrap_interval(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaNs ignored)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    return float(np.quantile(values, alpha / 2)), float(np.quantile(values, 1 - alpha / 2))


# ----------------------------------------------------------------------------- the gate


@dataclass(frozen=True)
class PairedBootstrap:
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
        return dict(self.__dict__)


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
    """
    y_true = np.asarray(y_true, dtype=object)
    a = np.asarray(pred_candidate, dtype=object)
    b = np.asarray(pred_production, dtype=object)
    if not (len(y_true) == len(a) == len(b)) or len(y_true) == 0:
        raise ValueError(f"paired bootstrap needs the same non-empty objects: {len(y_true)}, {len(a)}, {len(b)}")
    fn = METRICS[metric]
    rng = np.random.default_rng(seed)
    deltas = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, len(y_true), len(y_true))
        deltas[i] = fn(y_true[idx], a[idx], classes) - fn(y_true[idx], b[idx], classes)
    cand, prod = fn(y_true, a, classes), fn(y_true, b, classes)
    lo, hi = bootstrap_interval(deltas, alpha)
    return PairedBootstrap(metric, cand, prod, cand - prod, lo, hi, float(np.mean(deltas <= 0)), len(y_true), n_boot)


def gate_decision(result: PairedBootstrap, min_gain: float = 0.0) -> tuple[bool, str]:
    """Promote when the lower end of the paired interval of the gain is above ``min_gain``."""
    better = result.ci_low > min_gain
    text = (
        f"{result.metric} {result.candidate:.4f} vs production {result.production:.4f}: "
        f"paired bootstrap gain {result.delta:+.4f} [{result.ci_low:+.4f}, {result.ci_high:+.4f}] "
        f"on {result.n_objects} objects (min gain {min_gain})"
    )
    return better, ("beats: " if better else "does not beat: ") + text


# ----------------------------------------------------------------------------- evaluation runs


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
    rare_scores: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # rare class -> (draws, N) its probability per object


def concat_scored(parts: list[Scored]) -> Scored:
    """Pool the out-of-fold predictions of several folds (same classes and draws)."""
    first = parts[0]
    cat = lambda xs, axis=0: np.concatenate(xs, axis=axis)  # noqa: E731
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
    )


def summarize(scored: Scored, rare: list[str], model_uri: str, k: int) -> dict[str, Any]:
    """The report's figures from predictions (means over draws)."""
    draws = scored.preds.shape[0]
    per_draw = [classification_metrics(scored.truth, scored.preds[d], scored.classes) for d in range(draws)]
    classes = {
        c: {
            "precision": float(np.mean([m["classes"][c]["precision"] for m in per_draw])),
            "recall": float(np.mean([m["classes"][c]["recall"] for m in per_draw])),
            "f1": float(np.mean([m["classes"][c]["f1"] for m in per_draw])),
            "support": int(per_draw[0]["classes"][c]["support"]),
        }
        for c in scored.classes
    }
    kshot = {}
    for c in rare:
        sel = scored.truth == c
        if sel.any():
            recalls = np.mean(scored.preds[:, sel] == c, axis=1)  # (draws,)
            kshot[c] = {"mean": float(recalls.mean()), "std": float(recalls.std())}
    aurocs = [auroc(scored.open_pos[c], scored.open_neg[c]) for c in scored.open_pos if len(scored.open_pos[c])]
    by_phase = {}
    for days in scored.phase_preds:
        t, p = scored.phase_truth[days], scored.phase_preds[days]
        by_phase[days] = {
            "macro_f1": float(np.mean([macro_f1(t, p[d], scored.classes) for d in range(draws)])),
            "balanced_accuracy": float(np.mean([balanced_accuracy(t, p[d], scored.classes) for d in range(draws)])),
        }
    by_phase["full"] = {
        "macro_f1": float(np.mean([m["macro_f1"] for m in per_draw])),
        "balanced_accuracy": float(np.mean([m["balanced_accuracy"] for m in per_draw])),
    }
    return {
        "model_uri": model_uri,
        "k": int(k),
        "draws": int(draws),
        "classes": classes,
        "macro_f1": by_phase["full"]["macro_f1"],
        "balanced_accuracy": by_phase["full"]["balanced_accuracy"],
        "kshot_recall": kshot,
        "open_set_auroc": float(np.nanmean(aurocs)) if aurocs else float("nan"),
        "by_phase": by_phase,
    }


def bootstrap_summary(
    scored: Scored, rare: list[str], n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, Any]:
    """95% (by default) bootstrap intervals of the headline figures, resampling objects
    (stratified by class, so a 5-object class keeps 5 objects) and averaging over draws."""
    rng = np.random.default_rng(seed)
    draws = scored.preds.shape[0]
    by_class = [np.flatnonzero(scored.truth == c) for c in np.unique(scored.truth)]
    reps: dict[str, list[float]] = {"macro_f1": [], "balanced_accuracy": [], "open_set_auroc": []}
    reps.update({f"kshot_recall.{c}": [] for c in rare if np.any(scored.truth == c)})
    for days in scored.phase_preds:
        reps[f"by_phase.{days}.macro_f1"] = []
    phase_by_class = {d: [np.flatnonzero(t == c) for c in np.unique(t)] for d, t in scored.phase_truth.items()}
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(m, len(m)) for m in by_class])
        t, p = scored.truth[idx], scored.preds[:, idx]
        reps["macro_f1"].append(np.mean([macro_f1(t, p[d], scored.classes) for d in range(draws)]))
        reps["balanced_accuracy"].append(np.mean([balanced_accuracy(t, p[d], scored.classes) for d in range(draws)]))
        for c in rare:
            if f"kshot_recall.{c}" in reps:
                reps[f"kshot_recall.{c}"].append(np.mean(p[:, t == c] == c))
        aurocs = []
        for c in scored.open_pos:
            pos, neg = scored.open_pos[c], scored.open_neg[c]
            if len(pos) and len(neg):
                aurocs.append(auroc(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))))
        reps["open_set_auroc"].append(np.mean(aurocs) if aurocs else np.nan)
        for days, members in phase_by_class.items():
            j = np.concatenate([rng.choice(m, len(m)) for m in members])
            tt, pp = scored.phase_truth[days][j], scored.phase_preds[days][:, j]
            reps[f"by_phase.{days}.macro_f1"].append(
                np.mean([macro_f1(tt, pp[d], scored.classes) for d in range(draws)])
            )
    return {name: list(bootstrap_interval(np.asarray(v), alpha)) for name, v in reps.items()}


# ----------------------------------------------------------------------------- inputs


@dataclass
class LabelledArrays:
    """Featurized objects with coarse labels (what the scorers read)."""

    object_id: np.ndarray
    coarse: np.ndarray
    seq: np.ndarray
    length: np.ndarray
    feats: np.ndarray  # raw (not normalised)

    def take(self, rows: np.ndarray) -> LabelledArrays:
        return LabelledArrays(
            self.object_id[rows], self.coarse[rows], self.seq[rows], self.length[rows], self.feats[rows]
        )

    def __len__(self) -> int:
        return len(self.object_id)


def labelled_arrays(arrays: dict[str, np.ndarray], min_points: int = 1) -> LabelledArrays:
    """Featurize output -> coarse labels; objects with fewer than ``min_points`` detections dropped."""
    from cosmic_ray.core.taxonomy import OTHER, to_coarse

    coarse = np.asarray([to_coarse(label) if label else OTHER for label in arrays["label"]], dtype=object)
    keep = np.flatnonzero(arrays["length"] >= min_points)
    return LabelledArrays(
        arrays["object_id"][keep], coarse[keep], arrays["seq"][keep], arrays["length"][keep], arrays["feats"][keep]
    )


def featurize_labelled(table, max_len: int, min_points: int = 1) -> LabelledArrays:
    from cosmic_ray.learn.features import featurize

    return labelled_arrays(featurize(table, max_len), min_points)


_ZTF_NAME = re.compile(r"^ZTF\d{2}[a-z]{7}$")


def is_survey_object(object_id: str) -> bool:
    """Whether an object id is a ZTF object name (the survey the model is trained and evaluated on)."""
    return bool(_ZTF_NAME.match(str(object_id)))


def support_draws(
    support: LabelledArrays, rare: list[str], k: int, draws: int, seed: int
) -> list[dict[str, np.ndarray]]:
    """For each draw, class -> K row indices of ``support`` (seeded; fewer if the class has fewer).

    Support objects of the survey itself (:func:`is_survey_object`) are drawn first; objects of
    other surveys (the SLSN and TDE catalogues) fill up K when the survey has fewer than K."""
    own = np.asarray([is_survey_object(o) for o in support.object_id], dtype=bool)
    out = []
    for d in range(draws):
        rng = np.random.default_rng([seed, d])
        chosen = {}
        for c in rare:
            first, rest = np.flatnonzero((support.coarse == c) & own), np.flatnonzero((support.coarse == c) & ~own)
            pick = rng.choice(first, min(k, len(first)), replace=False)
            if len(pick) < k and len(rest):
                pick = np.concatenate([pick, rng.choice(rest, min(k - len(pick), len(rest)), replace=False)])
            if len(pick):
                chosen[c] = pick.astype(np.int64)
        out.append(chosen)
    return out


# ----------------------------------------------------------------------------- scorers


def score_protonet(
    classifier,
    data: LabelledArrays,
    phases: dict[str, LabelledArrays],
    support: LabelledArrays | None,
    rare: list[str],
    draws: list[dict[str, np.ndarray]],
    classes: list[str],
) -> Scored:
    """ProtoNet predictions per draw: base prototypes + one registered prototype per rare class
    (the mean embedding of that draw's K support objects, as ``with_class`` computes it), decided
    by the classifier's own rule (:meth:`~cosmic_ray.learn.classifier.ProtoNetClassifier.class_logits`,
    registered classes at the prior count ``with_class`` gives them)."""

    def embed(a: LabelledArrays) -> np.ndarray:
        return classifier.embed(a.seq, a.length, a.feats)

    base = [c for c in classifier.class_names if c not in rare]
    base_rows = [classifier.class_names.index(c) for c in base]
    base_protos = classifier.prototypes[base_rows]  # (B, D)
    base_counts = classifier.counts()[base_rows]  # (B,)
    registered_count = getattr(classifier.arch, "registered_prior_count", 1.0)
    emb_support = embed(support) if support is not None and len(support) else None

    def decide(emb: np.ndarray, draw: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
        names, protos, counts = list(base), [base_protos], list(base_counts)
        for c in rare:
            if c in draw and emb_support is not None:
                names.append(c)
                protos.append(emb_support[draw[c]].mean(axis=0, keepdims=True))
                counts.append(registered_count)
        return names, classifier.class_logits(emb, np.concatenate(protos), np.asarray(counts))  # (N, K)

    def predict(emb: np.ndarray, draw: dict[str, np.ndarray]) -> np.ndarray:
        names, logits = decide(emb, draw)
        return np.asarray(names, dtype=object)[logits.argmax(axis=1)]

    emb_data = embed(data)
    scored = Scored(classes=classes, truth=data.coarse, preds=np.stack([predict(emb_data, dr) for dr in draws]))
    scored.rare_scores = _rare_probabilities([decide(emb_data, dr) for dr in draws], rare, len(data))
    for days, arrays in phases.items():
        emb = embed(arrays)
        scored.phase_truth[days] = arrays.coarse
        scored.phase_preds[days] = np.stack([predict(emb, dr) for dr in draws])
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
    """Rare class -> (draws, N) its posterior probability (softmax of the logits) per object; NaN in
    a draw without that class."""
    out = {c: np.full((len(decisions), n), np.nan) for c in rare}
    for d, (names, logits) in enumerate(decisions):
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        for c in rare:
            if c in names:
                out[c][d] = probs[:, list(names).index(c)]
    return out


def ranking_summary(scored: Scored, top: tuple[float, ...] = (0.01, 0.02, 0.05, 0.10)) -> dict[str, Any]:
    """How well each rare class's probability ranks its objects first (a follow-up list), mean over draws.

    Per rare class: ``auroc`` (its objects against all others) and ``recall_at_top`` (the share of its
    objects among the top 1, 2, 5, 10% of all objects by that probability)."""
    out: dict[str, Any] = {}
    for c, scores in scored.rare_scores.items():
        mine = scored.truth == c
        ok = [d for d in range(len(scores)) if np.isfinite(scores[d]).all()]
        if not mine.any() or mine.all() or not ok:
            continue
        recall = {}
        for frac in top:
            n_top = max(1, int(round(frac * len(mine))))
            recall[f"{100 * frac:g}%"] = float(
                np.mean([mine[np.argsort(-scores[d], kind="stable")[:n_top]].sum() / mine.sum() for d in ok])
            )
        out[c] = {
            "auroc": float(np.mean([auroc(scores[d][mine], scores[d][~mine]) for d in ok])),
            "recall_at_top": recall,
        }
    return out


def _forest(seed: int):
    from imblearn.ensemble import BalancedRandomForestClassifier

    return BalancedRandomForestClassifier(
        n_estimators=200, sampling_strategy="all", replacement=True, bootstrap=False, random_state=seed, n_jobs=1
    )


def _x(feats: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(feats, float), nan=-999.0, posinf=1e6, neginf=-1e6)


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
    """Balanced random forest on the light-curve features: trained on ``train`` (known classes)
    plus, per draw, the same K support objects of each rare class the ProtoNet gets."""
    known = np.isin(train.coarse, [c for c in classes if c not in rare])
    xt, yt = _x(train.feats[known]), train.coarse[known]
    preds, phase_preds, decisions = [], {d: [] for d in phases}, []
    for i, draw in enumerate(draws):
        x, y = [xt], [yt]
        for c, rows in draw.items():
            x.append(_x(support.feats[rows]))
            y.append(np.asarray([c] * len(rows), dtype=object))
        forest = _forest(seed + i).fit(np.concatenate(x), np.concatenate(y).astype(str))
        probs = forest.predict_proba(_x(data.feats))
        preds.append(forest.classes_[probs.argmax(axis=1)].astype(object))
        decisions.append((list(forest.classes_), np.log(np.maximum(probs, 1e-12))))
        for days, arrays in phases.items():
            phase_preds[days].append(forest.predict(_x(arrays.feats)).astype(object))
    scored = Scored(
        classes=classes,
        truth=data.coarse,
        preds=np.stack(preds),
        phase_truth={d: a.coarse for d, a in phases.items()},
        phase_preds={d: np.stack(v) for d, v in phase_preds.items()},
        rare_scores=_rare_probabilities(decisions, rare, len(data)),
    )
    # open set: a forest of the base classes alone; score = 1 - highest class probability
    forest = _forest(seed).fit(xt, yt.astype(str))
    score = 1.0 - forest.predict_proba(_x(data.feats)).max(axis=1)
    is_base = np.isin(data.coarse, np.unique(yt))
    for c in rare:
        scored.open_pos[c] = score[data.coarse == c]
        scored.open_neg[c] = score[is_base]
    return scored


# ----------------------------------------------------------------------------- the report


@dataclass
class EvaluationInputs:
    """Featurized evaluation inputs (what :func:`score_all` needs), built by :func:`prepare_inputs`."""

    data: LabelledArrays
    phases: dict[str, LabelledArrays]
    support: LabelledArrays | None
    train: LabelledArrays
    classes: list[str]
    rare: list[str]


def prepare_inputs(
    classifier,
    data_table,
    train_table,
    support_table=None,
    same_event: Callable[[str], str] | None = None,
    phases: tuple[int, ...] = PHASES,
    min_support_points: int = 3,
) -> EvaluationInputs:
    """Featurize the data (in full and truncated at each phase), the support and the training table.

    * The evaluated classes are the model's classes plus the rare classes that have support
      objects; data objects of other classes (``Other`` included) are left out of the
      closed-set figures.
    * Support and training objects of the same event as a data object (``same_event`` maps an
      object id to an event id; identity by default) are dropped, so no event sits on both sides.

    Raises:
        ValueError: no data object of an evaluated class.
    """
    from cosmic_ray.learn.features import truncate

    key = same_event or (lambda oid: str(oid))
    max_len = classifier.max_len
    data = featurize_labelled(data_table, max_len)
    data_events = {key(o) for o in data.object_id}
    support = None
    if support_table is not None:
        support = featurize_labelled(support_table, max_len, min_support_points)
        support = support.take(np.flatnonzero([key(o) not in data_events for o in support.object_id]))
    # classes registered from examples after training count as absent: re-registered from --support
    registered = set(getattr(classifier, "meta", {}).get("registered_classes", {}))
    trained = [c for c in classifier.class_names if c not in registered]
    support_classes = sorted(set(support.coarse) - set(trained) - {"Other"}) if support is not None else []
    rare = [c for c in support_classes if np.any(data.coarse == c)]
    classes = [c for c in classifier.class_names if c not in rare] + rare
    keep = np.flatnonzero(np.isin(data.coarse, classes))
    dropped = len(data) - len(keep)
    if dropped:
        log.warning("%d data objects are of classes neither in the model nor in the support: left out", dropped)
    data = data.take(keep)
    if not len(data):
        raise ValueError(f"no data object of the evaluated classes {classes}")
    kept_ids = set(data.object_id)
    phase_arrays = {}
    for days in phases:
        a = featurize_labelled(truncate(data_table, float(days)), max_len)
        phase_arrays[str(days)] = a.take(np.flatnonzero([o in kept_ids for o in a.object_id]))
    train = featurize_labelled(train_table, max_len, 3)
    train = train.take(np.flatnonzero([key(o) not in data_events for o in train.object_id]))
    if not len(train):
        raise ValueError(
            "no training object is left for the baseline once the data's events are removed: pass --train with other objects than --data"
        )
    seen = set(map(str, getattr(classifier, "ref_ids", []))) & {str(o) for o in kept_ids}
    if seen:
        log.warning("%d data objects were training objects of this model: its figures are optimistic", len(seen))
    return EvaluationInputs(data, phase_arrays, support, train, classes, rare)


def score_all(classifier, inputs: EvaluationInputs, k: int, draws: int, seed: int = 0) -> tuple[Scored, Scored]:
    """(ProtoNet, baseline) predictions on the same objects with the same support draws."""
    n_draws = draws if inputs.rare else 1
    chosen = (
        support_draws(inputs.support, inputs.rare, k, n_draws, seed) if inputs.support is not None else [{}] * n_draws
    )
    model = score_protonet(classifier, inputs.data, inputs.phases, inputs.support, inputs.rare, chosen, inputs.classes)
    base = score_baseline(
        inputs.train, inputs.data, inputs.phases, inputs.support, inputs.rare, chosen, inputs.classes, seed
    )
    return model, base


def evaluate_report(
    classifier,
    data_table,
    train_table,
    support_table=None,
    *,
    k: int = 5,
    draws: int = 10,
    model_uri: str = "",
    seed: int = 0,
    same_event: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """The evaluation report of the issue (see the module docstring for each key)."""
    inputs = prepare_inputs(classifier, data_table, train_table, support_table, same_event)
    model, base = score_all(classifier, inputs, k, draws, seed)
    report = summarize(model, inputs.rare, model_uri, k)
    report["baseline"] = summarize(base, inputs.rare, "baseline:light-curve-features+balanced-random-forest", k)
    return report


def flat_metrics(report: dict[str, Any], prefix: str = "eval") -> dict[str, float]:
    """Numeric figures of a report as flat MLflow metric names."""
    out: dict[str, float] = {}

    def walk(obj: Any, name: str) -> None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                walk(value, f"{name}.{str(key).replace(' ', '_').replace('/', '_')}")
        elif isinstance(obj, (int, float)) and not isinstance(obj, bool) and np.isfinite(obj):
            out[name] = float(obj)

    walk({k: v for k, v in report.items() if k != "model_uri"}, prefix)
    return out


def format_table(report: dict[str, Any]) -> str:
    """A printable table: per class P/R/F1 for the model and the baseline, then the headline figures."""
    base = report.get("baseline", {})
    lines = [f"{'class':<12} {'support':>7}  {'P':>5} {'R':>5} {'F1':>5}   {'base F1':>7}"]
    for name, row in report["classes"].items():
        bf1 = base.get("classes", {}).get(name, {}).get("f1", float("nan"))
        lines.append(
            f"{name:<12} {row['support']:>7}  {row['precision']:5.2f} {row['recall']:5.2f} {row['f1']:5.2f}   {bf1:7.2f}"
        )
    lines.append(
        f"macro-F1 {report['macro_f1']:.3f} (baseline {base.get('macro_f1', float('nan')):.3f})  "
        f"balanced accuracy {report['balanced_accuracy']:.3f} (baseline {base.get('balanced_accuracy', float('nan')):.3f})"
    )
    lines.append(
        f"open-set AUROC {report['open_set_auroc']:.3f} (baseline {base.get('open_set_auroc', float('nan')):.3f})"
    )
    for c, v in report["kshot_recall"].items():
        lines.append(f"{report['k']}-shot recall {c}: {v['mean']:.2f} +- {v['std']:.2f} over {report['draws']} draws")
    for days, v in report["by_phase"].items():
        lines.append(f"phase {days:>4}: macro-F1 {v['macro_f1']:.3f}  balanced accuracy {v['balanced_accuracy']:.3f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- figures


def confusion_png(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], path) -> None:
    """Row-normalised confusion matrix as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object), labels=classes).astype(
        float
    )
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(classes), 0.8 + 0.6 * len(classes)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                int(cm[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def embedding_png(
    embeddings: np.ndarray, labels: np.ndarray, prototypes: np.ndarray, proto_names: list[str], path
) -> None:
    """2-D PCA map of embeddings coloured by class, prototypes as stars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = np.concatenate([embeddings, prototypes])
    mean = both.mean(axis=0)
    _, _, vt = np.linalg.svd(both - mean, full_matrices=False)
    xy, pxy = (embeddings - mean) @ vt[:2].T, (prototypes - mean) @ vt[:2].T
    fig, ax = plt.subplots(figsize=(7, 6))
    cmap = plt.get_cmap("tab10")
    for i, name in enumerate(proto_names):
        sel = labels == name
        ax.scatter(xy[sel, 0], xy[sel, 1], s=8, alpha=0.6, color=cmap(i % 10), label=f"{name} ({sel.sum()})")
        ax.scatter(pxy[i, 0], pxy[i, 1], s=250, marker="*", edgecolor="black", color=cmap(i % 10))
    ax.legend(fontsize=7, markerscale=2)
    ax.set_title("embedding map (PCA), prototypes as stars")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------- tables


def read_table(path):
    """A labelled light-curve table: the long format (``catalog`` source), or one of the SLSN/TDE/
    ALeRCE catalogues (``catalogs`` source) when ``path`` is such a file or a folder holding one.

    Raises:
        cosmic_ray.core.errors.SourceError: nothing readable at ``path``.
    """
    from pathlib import Path

    from cosmic_ray.core.errors import SourceError
    from cosmic_ray.sources import catalog, catalogs

    path = Path(path)
    if not path.exists():
        raise SourceError(f"table {path} does not exist")
    if (path.is_dir() and any(catalogs.identify(p) for p in path.iterdir())) or (
        path.is_file() and catalogs.identify(path)
    ):
        return catalogs.read_catalogue(path).table
    import pyarrow as pa

    parts = [catalog.parse(raw).table for raw in catalog.fetch(catalog.build_request([path]))]
    if not parts or not sum(t.num_rows for t in parts):
        raise SourceError(
            f"no light-curve rows in {path}: expected the long format object_id,label,mjd,band,mag,magerr"
        )
    return pa.concat_tables(parts)


def event_key_from_shared(shared_dir) -> Callable[[str], str]:
    """Object id -> event id, matching names across the shared catalogues (BTS, SLSN, TDE, ALeRCE)."""
    from cosmic_ray.sources.crossmatch import build_crossmatch, load_shared_entries

    xm = build_crossmatch(load_shared_entries(shared_dir))
    return lambda oid: xm.canonical("", str(oid))


def event_folds(coarse: np.ndarray, events: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold of each object for cross-validation, disjoint by event and stratified by class.

    Every event (all objects that are the same astrophysical source) lands in one fold; within
    each class the events are shuffled (seeded) and dealt round-robin from a random offset, so a
    5-object class spreads over the folds. (N,) coarse labels, (N,) event ids -> (N,) fold index."""
    rng = np.random.default_rng(seed)
    fold_of_event: dict[str, int] = {}
    for c in np.unique(coarse):
        evs = rng.permutation(sorted(set(events[coarse == c]) - set(fold_of_event)))
        offset = rng.integers(n_folds)
        for i, e in enumerate(evs):
            fold_of_event[e] = (i + offset) % n_folds
    return np.asarray([fold_of_event[e] for e in events])
