"""How far every label gets: fully supervised references on the same folds as fewshot_eval.py.

The few-shot figures (bench/fewshot_eval.py) register SLSN-I and TDE from K support objects. This
bench asks what the same BTS light curves allow when nothing is held back: on the same
object- and event-disjoint folds (``cosmic_ray.learn.evaluate.tables.event_folds``, same ``--seed``), every
coarse class, SLSN-I and TDE included, is trained on all of its training-fold objects by

* ``protonet_all_labels``: the ProtoNet itself (configs/train.yaml, the same episodic loop), SLSN-I
  and TDE as trained base classes with their own prototypes and class priors;
* ``balanced_random_forest``: the baseline of the few-shot report, on every label;
* ``logistic_regression``: class-balanced, on the features as normal scores;
* ``gradient_boosting``: scikit-learn's histogram gradient boosting, class-balanced.

Same features (``cosmic_ray.learn.features``), same classes and the same class-stratified bootstrap as
the few-shot report. Out-of-fold predictions are pooled.

    .venv/bin/python bench/supervised_reference.py --seed 0 --out /tmp/reference.json   # ~3 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bts_cv import MAX_LEN, BtsFolds, add_common_arguments, load_bts_folds, quiet_single_thread  # noqa: E402

from cosmic_ray.core.config import DataConfig, load_train_config  # noqa: E402
from cosmic_ray.core.taxonomy import OTHER, SUPPORT_ONLY  # noqa: E402
from cosmic_ray.learn.classifier import build_classifier  # noqa: E402
from cosmic_ray.learn.context_features import context_matrix  # noqa: E402
from cosmic_ray.learn.evaluate import baselines as ev_baselines  # noqa: E402
from cosmic_ray.learn.evaluate import metrics as ev_metrics  # noqa: E402
from cosmic_ray.learn.evaluate import report as ev_report  # noqa: E402
from cosmic_ray.learn.evaluate import scorers as ev_scorers  # noqa: E402
from cosmic_ray.learn.model import ProtoNetConfig  # noqa: E402
from cosmic_ray.learn.train import fit_local  # noqa: E402
from cosmic_ray.learn.trainset import attach_views, build_training_set  # noqa: E402

log = logging.getLogger("supervised_reference")


def conventional_models() -> list[str]:
    """The reference models of cosmic_ray.learn.evaluate.baselines (fixed: forest undersampling to the
    median class, NaN reaching the imputer, leaves of 3), Superphot+-style included."""
    return list(ev_baselines.MODELS)


def model_inputs(kind: str, cv: BtsFolds, villar: dict, contexts: dict, mode: str) -> np.ndarray:
    """(N, P) what a reference model reads for every BTS object: features or Villar parameters, + context."""
    ids = cv.arrays["object_id"]
    if kind == "villar":
        width = len(ev_baselines.VILLAR_BANDS) * len(ev_baselines.VILLAR_NAMES)
        base = np.stack([villar.get(str(o), np.full(width, np.nan)) for o in ids])
    else:
        base = np.asarray(cv.arrays["feats"], dtype=float)
    ctx = context_matrix([contexts.get(str(o)) for o in ids], len(ids), mode)
    return np.concatenate([base, ctx], axis=1)


def protonet_all_labels(
    cv: BtsFolds, train_rows: np.ndarray, test_rows: np.ndarray, cfg, seed: int, epochs: int, per_epoch: int
) -> np.ndarray:
    """Train the ProtoNet on every class of the training rows (none held back); predict the test rows."""
    data_cfg = DataConfig(min_objects_per_class=3)  # TDE has 4 BTS objects in a training fold
    data, stats = build_training_set(cv.take(train_rows), data_cfg, 0.05, seed, support_only=())
    attach_views(data, cv.views, stats)
    arch = ProtoNetConfig(seq_channels=data.seq.shape[2], n_feats=data.feats.shape[1], **cfg.model.model_dump())
    episodes = {
        "n_way": len(data.class_names),
        "k_shot": cfg.episodes.k_shot,
        "n_query": cfg.episodes.n_query,
        "per_epoch": per_epoch,
        "min_objects": 2,
        "held_out_per_epoch": cfg.episodes.held_out_per_epoch,
    }
    out = fit_local(data, arch, epochs=epochs, lr=cfg.lr, episodes=episodes, seed=seed)
    clf = build_classifier(out.state_dict, arch, data, stats.mean, stats.std, MAX_LEN)
    test = cv.take(test_rows)
    emb = clf.embed(test["seq"], test["length"], test["feats"])
    return np.asarray(clf.class_names, dtype=object)[clf.class_logits(emb).argmax(axis=1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("supervised_reference.json"))
    parser.add_argument("--mode", default="light_curve", help="context mode the reference models read")
    parser.add_argument("--no-protonet", action="store_true", help="reference models only")
    args = parser.parse_args()
    quiet_single_thread()
    cfg = load_train_config(args.config)
    t_start = time.perf_counter()
    cv = load_bts_folds(args.data, args.folds, args.views, args.seed)
    coarse, fold = cv.coarse, cv.fold
    scored = coarse != OTHER  # the objects and classes the few-shot report scores
    classes = sorted(set(coarse[scored]))
    villar = ev_baselines.villar_table_features(cv.table)
    inputs = {kind: model_inputs(kind, cv, villar, cv.contexts, args.mode) for kind in ("lc", "villar")}
    names = ([] if args.no_protonet else ["protonet_all_labels"]) + conventional_models()
    preds = {name: np.empty(len(coarse), dtype=object) for name in names}
    for f in range(args.folds):
        train_rows, test_rows = np.flatnonzero((fold != f) & scored), np.flatnonzero((fold == f) & scored)
        if not args.no_protonet:
            preds["protonet_all_labels"][test_rows] = protonet_all_labels(
                cv, train_rows, test_rows, cfg, args.seed + f, args.epochs, args.per_epoch
            )
        for name in conventional_models():
            make, prep, kind = ev_baselines.MODELS[name]
            y = coarse[train_rows].astype(str)
            model = make(args.seed + f, y).fit(prep(inputs[kind][train_rows]), y)
            preds[name][test_rows] = model.predict(prep(inputs[kind][test_rows]))
        log.info("fold %d/%d done, %.0f s so far", f + 1, args.folds, time.perf_counter() - t_start)

    rows = np.flatnonzero(scored)
    result: dict = {
        "command": " ".join(sys.argv),
        "seed": args.seed,
        "folds": args.folds,
        "classes": classes,
        "models": {},
    }
    for name, pred in preds.items():
        s = ev_scorers.Scored(classes=classes, truth=coarse[rows], preds=pred[rows][None, :])
        metrics = ev_metrics.classification_metrics(s.truth, s.preds[0], classes)
        result["models"][name] = {
            "macro_f1": metrics["macro_f1"],
            "balanced_accuracy": metrics["balanced_accuracy"],
            "recall": {c: metrics["classes"][c]["recall"] for c in classes},
            "f1": {c: metrics["classes"][c]["f1"] for c in classes},
            "intervals": {
                key.replace("kshot_recall.", "recall."): value
                for key, value in ev_report.bootstrap_summary(s, list(SUPPORT_ONLY), args.boot, args.seed).items()
                if key != "open_set_auroc"
            },  # no open-set score here: every class is trained
        }
        low, high = result["models"][name]["intervals"]["macro_f1"]
        print(
            f"{name:24s} macro-F1 {metrics['macro_f1']:.3f} [{low:.3f}, {high:.3f}]  "
            + "  ".join(f"{c} recall {metrics['classes'][c]['recall']:.2f}" for c in SUPPORT_ONLY),
            file=sys.stderr,
        )
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
