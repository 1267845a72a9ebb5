"""The evaluation report: closed-set, K-shot, open-set and early-phase figures of a model and a baseline.

The report (:func:`evaluate_report`) has exactly these keys (:data:`REPORT_KEYS`)::

    model_uri, k, draws, classes {name: {precision, recall, f1, support}}, macro_f1,
    balanced_accuracy, kshot_recall {class: {mean, std}}, open_set_auroc,
    by_phase {days: {macro_f1, balanced_accuracy}}, open_set_auroc_by_class {class: auroc},
    followup {class: {top1, top5, top10}}, baseline {the same keys},
    modes {light_curve | alert_time | with_redshift: {the same keys}}

* ``modes``: the figures with the per-object context (:mod:`cosmic_ray.core.context`) masked by
  mode: ``light_curve`` hides it, ``alert_time`` shows all but the redshift, ``with_redshift`` all.
  The top-level figures are ``alert_time``'s. The classifier gets each object's masked context;
  the baseline appends the fields the mode shows to its features. Modes that show the same values
  (every mode when there is no context) are scored once.

* Closed-set figures are the mean over the support draws (see
  :mod:`~cosmic_ray.learn.evaluate.scorers`). Support objects of the same event as a data object
  are never drawn; objects of the data's own survey (ZTF names) are drawn first, catalogue objects
  make up the rest of K.
* ``open_set_auroc``: leave-one-class-out over the rare classes, the AUROC of the open-set score
  of c's objects against the objects of the base classes, averaged over the rare classes.
* ``open_set_auroc_by_class``: every class held out in turn (:mod:`~cosmic_ray.learn.evaluate.openset`).
* ``followup``: per class, the share of its objects in the top 1, 5, 10% when all objects are
  ranked by its probability.
* ``by_phase``: every light curve truncated 3, 10 and 30 days after its first detection, and in full.
* ``baselines``: every reference model of :mod:`~cosmic_ray.learn.evaluate.baselines` (balanced
  forest, logistic regression, gradient boosting, Superphot+-style Villar fits + boosting), fit on
  the training table with the same context and support draws, scored the same way;
  ``baseline`` is the one with the highest macro-F1 (its ``model_uri`` names it).

The CLI (``cosmic-ray evaluate``), the registry (:func:`flat_metrics`) and ``bench/fewshot_eval.py``
(cross-validation: :func:`summarize`, :func:`bootstrap_summary`, :func:`ranking_summary`) call it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from cosmic_ray.core.context import DEFAULT_MODE, MODES
from cosmic_ray.learn.evaluate import baselines
from cosmic_ray.learn.evaluate.context import lookup_from_table
from cosmic_ray.learn.evaluate.inputs import EvaluationInputs, prepare_inputs
from cosmic_ray.learn.evaluate.metrics import (
    auroc,
    balanced_accuracy,
    bootstrap_interval,
    classification_metrics,
    macro_f1,
)
from cosmic_ray.learn.evaluate.modes import inputs_in_mode, mode_key
from cosmic_ray.learn.evaluate.openset import baseline_open_set_by_class, followup_summary, protonet_open_set_by_class
from cosmic_ray.learn.evaluate.scorers import Scored, score_all

if TYPE_CHECKING:
    from cosmic_ray.learn.classifier import ProtoNetClassifier

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
    "open_set_auroc_by_class",
    "followup",
    "baseline",
    "baselines",
    "modes",
)
BASELINE_URI = "baseline:light-curve-features+balanced-random-forest"
BASELINE_URI_PREFIX = "baseline:"


def summarize(scored: Scored, rare: list[str], model_uri: str, k: int) -> dict[str, Any]:
    """The report's figures from predictions (means over draws): every key but ``baseline``."""
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
    """95% (by default) bootstrap intervals of the headline figures.

    Resamples objects (stratified by class, so a 5-object class keeps 5 objects) and averages over
    draws.

    Returns:
        Figure name (``macro_f1``, ``kshot_recall.<class>``, ``by_phase.<days>.macro_f1``, ...) -> [low, high].
    """
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
        reps["macro_f1"].append(float(np.mean([macro_f1(t, p[d], scored.classes) for d in range(draws)])))
        reps["balanced_accuracy"].append(
            float(np.mean([balanced_accuracy(t, p[d], scored.classes) for d in range(draws)]))
        )
        for c in rare:
            if f"kshot_recall.{c}" in reps:
                reps[f"kshot_recall.{c}"].append(float(np.mean(p[:, t == c] == c)))
        aurocs = []
        for c in scored.open_pos:
            pos, neg = scored.open_pos[c], scored.open_neg[c]
            if len(pos) and len(neg):
                aurocs.append(auroc(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))))
        reps["open_set_auroc"].append(float(np.mean(aurocs)) if aurocs else float("nan"))
        for days, members in phase_by_class.items():
            j = np.concatenate([rng.choice(m, len(m)) for m in members])
            tt, pp = scored.phase_truth[days][j], scored.phase_preds[days][:, j]
            reps[f"by_phase.{days}.macro_f1"].append(
                float(np.mean([macro_f1(tt, pp[d], scored.classes) for d in range(draws)]))
            )
    return {name: list(bootstrap_interval(np.asarray(v), alpha)) for name, v in reps.items()}


def ranking_summary(scored: Scored, top: tuple[float, ...] = (0.01, 0.02, 0.05, 0.10)) -> dict[str, Any]:
    """How well each rare class's probability ranks its objects first (a follow-up list), mean over draws.

    Returns:
        Rare class -> ``auroc`` (its objects against all others) and ``recall_at_top`` (the share
        of its objects among the top 1, 2, 5, 10% of all objects by that probability).
    """
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


def _baseline_report(
    name: str, scored: Scored, inputs: EvaluationInputs, k: int, seed: int, by_class: dict[str, float] | None
) -> dict[str, Any]:
    """One reference model's report: the model's keys, its open set by class and follow-up figures."""
    report = summarize(scored, inputs.rare, f"{BASELINE_URI_PREFIX}{name}", k)
    own = {c: auroc(scored.open_pos[c], scored.open_neg[c]) for c in scored.open_pos}  # the rare classes
    report["open_set_auroc_by_class"] = {**(by_class or {}), **own}
    report["followup"] = followup_summary(scored)
    return report


def mode_report(
    classifier: ProtoNetClassifier,
    inputs: EvaluationInputs,
    k: int,
    draws: int,
    seed: int,
    model_uri: str,
    mode: str = DEFAULT_MODE,
    baseline_models: Sequence[str] | None = None,
    villar: Any = None,
) -> dict[str, Any]:
    """The report of one masked view of the inputs (every key but ``modes``).

    ``baselines`` holds every reference model; ``baseline`` is the one with the highest macro-F1.
    Every class held out in turn (``open_set_auroc_by_class``) is measured for the ProtoNet and the
    balanced forest; the other reference models report their rare classes'.
    """
    model, scored = score_all(classifier, inputs, k, draws, seed, mode, baseline_models, villar)
    report = summarize(model, inputs.rare, model_uri, k)
    report["open_set_auroc_by_class"] = protonet_open_set_by_class(
        classifier, inputs.data, inputs.classes, inputs.rare, mode
    )
    report["followup"] = followup_summary(model)
    forest = "balanced_random_forest"
    report["baselines"] = {
        name: _baseline_report(
            name,
            s,
            inputs,
            k,
            seed,
            baseline_open_set_by_class(inputs.train, inputs.data, inputs.classes, inputs.rare, seed, scored=s)
            if name == forest
            else None,
        )
        for name, s in scored.items()
    }
    best = max(report["baselines"], key=lambda n: report["baselines"][n]["macro_f1"])
    report["baseline"] = copy.deepcopy(report["baselines"][best])
    return report


def report_by_mode(
    classifier: ProtoNetClassifier,
    inputs: EvaluationInputs,
    k: int,
    draws: int,
    seed: int,
    model_uri: str,
    modes: tuple[str, ...] = tuple(MODES),
    baseline_models: Sequence[str] | None = None,
    villar: Any = None,
) -> dict[str, Any]:
    """:func:`mode_report` per context mode (views that show the same values scored once); the top
    level is ``alert_time``'s (the first mode given when it is not among them), plus ``modes``."""
    done: dict[str, dict[str, Any]] = {}
    by_mode: dict[str, dict[str, Any]] = {}
    for mode in modes:
        view = inputs_in_mode(inputs, mode)
        key = mode_key(view)
        if key not in done:
            done[key] = mode_report(classifier, view, k, draws, seed, model_uri, mode, baseline_models, villar)
        by_mode[mode] = done[key]
    headline = DEFAULT_MODE if DEFAULT_MODE in by_mode else modes[0]
    return {**copy.deepcopy(by_mode[headline]), "modes": copy.deepcopy(by_mode)}


def evaluate_report(
    classifier: ProtoNetClassifier,
    data_table: pa.Table,
    train_table: pa.Table,
    support_table: pa.Table | None = None,
    *,
    k: int = 5,
    draws: int = 10,
    model_uri: str = "",
    seed: int = 0,
    same_event: Callable[[str], str] | None = None,
    context: pa.Table | None = None,
    modes: tuple[str, ...] = tuple(MODES),
    baseline_models: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The evaluation report (see the module docstring for each key).

    Args:
        context: per-object context (a merged :data:`~cosmic_ray.core.context.CONTEXT_SCHEMA`
            table, one row per object) of the data, support and training objects; None: none known.
        modes: the context modes to score (default: all three).
        baseline_models: names of :data:`~cosmic_ray.learn.evaluate.baselines.MODELS` (default all).

    Raises:
        ValueError: no data object of an evaluated class, or no training object for the baseline.
    """
    lookup = lookup_from_table(context)
    inputs = prepare_inputs(classifier, data_table, train_table, support_table, same_event, context=lookup)
    names = list(baseline_models) if baseline_models is not None else list(baselines.MODELS)
    villar = None
    if "superphot_plus" in names:
        villar = baselines.villar_for(data_table, train_table, support_table, tuple(int(d) for d in inputs.phases))
    return report_by_mode(classifier, inputs, k, draws, seed, model_uri, modes, names, villar)


def flat_metrics(report: dict[str, Any], prefix: str = "eval") -> dict[str, float]:
    """Numeric figures of a report as flat MLflow metric names (``eval.by_phase.3.macro_f1``, ...)."""
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
    for mode, v in report.get("modes", {}).items():
        lines.append(
            f"context {mode:<13}: macro-F1 {v['macro_f1']:.3f} (baseline {v['baseline']['macro_f1']:.3f})  "
            f"open-set AUROC {v['open_set_auroc']:.3f}"
        )
    return "\n".join(lines)
