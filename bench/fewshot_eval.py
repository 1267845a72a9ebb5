"""Object-disjoint, event-disjoint cross-validation of the few-shot figures on the real BTS data.

For each fold the ProtoNet is trained (the same episodic loop as Ray Train's workers, run in one
process: cosmic_ray.learn.train.fit_local) on the other folds; the rare classes (SLSN-I, TDE) are never
trained on and are registered from K support objects: the training folds' own BTS objects of the
class first, then objects of the SLSN and TDE catalogues, minus every catalogue object that is the
same event as a test-fold object (cosmic_ray.sources.crossmatch). Model, lr and episode shape come from
configs/train.yaml (--config). The baseline
(light-curve features + balanced random forest) is trained on the same training folds plus the
same support draws. Out-of-fold predictions are pooled; intervals are class-stratified bootstrap
95% percentile intervals over objects.

    .venv/bin/python bench/fewshot_eval.py --out fewshot_cv.json   # ~5 min on 2 quiet cores, ~10 busy

Prints one JSON document (also written to --out).
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

from bts_cv import add_common_arguments, load_bts_folds, quiet_single_thread  # noqa: E402

from cosmic_ray.core.config import DataConfig, load_train_config  # noqa: E402
from cosmic_ray.core.taxonomy import SUPPORT_ONLY  # noqa: E402
from cosmic_ray.learn.classifier import build_classifier  # noqa: E402
from cosmic_ray.learn.evaluate import inputs as ev_inputs  # noqa: E402
from cosmic_ray.learn.evaluate import report as ev_report  # noqa: E402
from cosmic_ray.learn.evaluate import scorers as ev_scorers  # noqa: E402
from cosmic_ray.learn.model import ProtoNetConfig  # noqa: E402
from cosmic_ray.learn.train import fit_local  # noqa: E402
from cosmic_ray.learn.trainset import attach_views, build_training_set  # noqa: E402
from cosmic_ray.sources import catalogs  # noqa: E402

log = logging.getLogger("fewshot_eval")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument(
        "--max-per-class",
        type=int,
        default=0,
        help="cap on training objects per class (0: none; the class priors count all)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.05,
        help="inner validation share of the training folds (only monitors training and calibrates the open-set score: the test fold is the evaluation)",
    )
    parser.add_argument("--out", type=Path, default=Path("fewshot_cv.json"))
    args = parser.parse_args()
    quiet_single_thread()
    cfg = load_train_config(args.config)
    val_fraction = args.val_fraction
    t_start = time.perf_counter()

    import pyarrow as pa
    import pyarrow.compute as pc

    cv = load_bts_folds(args.data, args.folds, args.views, args.seed)  # every BTS object (and its event) is tested once
    bts, arrays, views, coarse, fold, same_event = cv.table, cv.arrays, cv.views, cv.coarse, cv.fold, cv.same_event
    support_table = pa.concat_tables(
        [catalogs.read_catalogue(args.data / "slsne").table, catalogs.read_catalogue(args.data / "tde").table]
    )

    scored: dict[int, list[tuple[ev_scorers.Scored, ev_scorers.Scored]]] = {k: [] for k in args.shots}
    rare_all: list[str] = []
    for f in range(args.folds):
        train_rows, test_rows = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        data, stats = build_training_set(
            cv.take(train_rows),
            DataConfig(max_objects_per_class=args.max_per_class or None),
            val_fraction,
            args.seed + f,
        )
        attach_views(data, views, stats)
        arch = ProtoNetConfig(seq_channels=data.seq.shape[2], n_feats=data.feats.shape[1], **cfg.model.model_dump())
        episodes = {
            "n_way": len(data.class_names),
            "k_shot": cfg.episodes.k_shot,
            "n_query": cfg.episodes.n_query,
            "per_epoch": args.per_epoch,
            "min_objects": 2,
            "held_out_per_epoch": cfg.episodes.held_out_per_epoch,
        }
        out = fit_local(data, arch, epochs=args.epochs, lr=cfg.lr, episodes=episodes, seed=args.seed + f)
        clf = build_classifier(out.state_dict, arch, data, stats.mean, stats.std, 64)
        ids = lambda rows: pa.array(list(arrays["object_id"][rows]))  # noqa: E731
        test_table = bts.filter(pc.is_in(bts.column("object_id"), ids(test_rows)))
        train_table = bts.filter(pc.is_in(bts.column("object_id"), ids(train_rows)))
        # support: the training folds' own objects of the support-only classes first, catalogue objects
        # (other surveys, events of the test fold removed by prepare_inputs) when the survey has fewer than K
        own_rare = train_rows[np.isin(coarse[train_rows], SUPPORT_ONLY)]
        fold_support = pa.concat_tables(
            [support_table, bts.filter(pc.is_in(bts.column("object_id"), ids(own_rare)))], promote_options="default"
        )
        inputs = ev_inputs.prepare_inputs(clf, test_table, train_table, fold_support, same_event)
        rare_all = sorted(set(rare_all) | set(inputs.rare))
        for k in args.shots:
            scored[k].append(ev_scorers.score_all(clf, inputs, k, args.draws, args.seed))
        log.info(
            "fold %d/%d: %d train / %d test objects, loss %.3f -> %.3f, %.0f s so far",
            f + 1,
            args.folds,
            len(train_rows),
            len(test_rows),
            out.history[0]["train_loss"],
            out.history[-1]["train_loss"],
            time.perf_counter() - t_start,
        )

    result: dict = {
        "command": " ".join(sys.argv),
        "folds": args.folds,
        "draws": args.draws,
        "epochs": args.epochs,
        "per_epoch": args.per_epoch,
        "views": args.views,
        "rare": rare_all,
        "model": cfg.model.model_dump(),
        "arch": {k: v for k, v in arch.to_dict().items() if k not in ("seq_channels", "n_feats")},
        "n_feats": arch.n_feats,
        "val_fraction": val_fraction,
        "by_k": {},
    }
    for k in args.shots:
        model = ev_scorers.concat_scored([m for m, _ in scored[k]])
        base = ev_scorers.concat_scored([b for _, b in scored[k]])
        report = ev_report.summarize(model, rare_all, "cv:protonet", k)
        report["baseline"] = ev_report.summarize(base, rare_all, "cv:balanced-random-forest", k)
        report["ranking"] = ev_report.ranking_summary(
            model
        )  # rare classes as a follow-up list: AUROC, recall in the top 1-10%
        report["baseline"]["ranking"] = ev_report.ranking_summary(base)
        report["intervals"] = ev_report.bootstrap_summary(model, rare_all, args.boot, args.seed)
        report["baseline"]["intervals"] = ev_report.bootstrap_summary(base, rare_all, args.boot, args.seed)
        result["by_k"][str(k)] = report
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
