"""Object-disjoint, event-disjoint cross-validation of the few-shot figures on the real BTS data.

For each fold the ProtoNet is trained (the same episodic loop as Ray Train's workers, run in one
process: cosmic_ray.learn.train.fit_local) on the other folds; the rare classes (SLSN-I, TDE) are never
trained on and are registered from K support objects: the training folds' own BTS objects of the
class first, then objects of the SLSN and TDE catalogues, minus every catalogue object that is the
same event as a test-fold object (cosmic_ray.sources.crossmatch). Model, lr and episode shape come from
configs/train.yaml (--config), with the ablation switches below on top.

Context: ``ztf-bts/bts_dev_context.csv`` joined by object id (catalogue support objects have none).
Every context mode (light_curve, alert_time, with_redshift) is scored with the same trained model
(the modes hide fields at prediction time). The reference models (cosmic_ray.learn.evaluate.baselines:
balanced forest, logistic regression, gradient boosting, Superphot+-style Villar fits + boosting)
are trained on the same training folds plus the same support draws, with the same context. Out-of-fold
predictions are pooled; intervals are class-stratified bootstrap 95% percentile intervals over
objects, and the model's difference to the strongest baseline (highest macro-F1 in that mode) is
a paired bootstrap.

    .venv/bin/python bench/fewshot_eval.py --out fewshot_cv.json

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

from bts_cv import MAX_LEN, add_common_arguments, load_bts_folds, quiet_single_thread  # noqa: E402

from cosmic_ray.core.config import DataConfig, load_train_config  # noqa: E402
from cosmic_ray.core.context import MODES  # noqa: E402
from cosmic_ray.core.taxonomy import SUPPORT_ONLY  # noqa: E402
from cosmic_ray.learn.age_matched import age_prototypes  # noqa: E402
from cosmic_ray.learn.classifier import build_classifier  # noqa: E402
from cosmic_ray.learn.evaluate import baselines as ev_baselines  # noqa: E402
from cosmic_ray.learn.evaluate import inputs as ev_inputs  # noqa: E402
from cosmic_ray.learn.evaluate import paired as ev_paired  # noqa: E402
from cosmic_ray.learn.evaluate import report as ev_report  # noqa: E402
from cosmic_ray.learn.evaluate import scorers as ev_scorers  # noqa: E402
from cosmic_ray.learn.features import featurize, truncate  # noqa: E402
from cosmic_ray.learn.model import ProtoNetConfig  # noqa: E402
from cosmic_ray.learn.train import fit_local  # noqa: E402
from cosmic_ray.learn.trainset import attach_views, build_training_set  # noqa: E402
from cosmic_ray.sources import catalogs  # noqa: E402

log = logging.getLogger("fewshot_eval")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--shots", type=int, nargs="+", default=[5])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--max-per-class", type=int, default=0, help="cap on training objects per class (0: none)")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.05,
        help="inner validation share of the training folds (monitors training, calibrates the open-set score)",
    )
    # ablation switches (on top of --config's model)
    parser.add_argument("--no-context", action="store_true", help="no context anywhere (block nor encoder)")
    parser.add_argument("--encoder-context", action="store_true", help="the learned encoder reads context too")
    parser.add_argument("--learned-scale", type=float, default=None, help="0: features only (no learned part)")
    parser.add_argument("--episode-distance", choices=["learned_only", "embedding"], default=None)
    parser.add_argument("--novelty-rule", choices=["mixture", "min_distance"], default=None)
    parser.add_argument("--tune-prior", choices=["yes", "no"], default=None)
    parser.add_argument("--age-matched", action="store_true", help="age-matched prototypes (3/10/30 days)")
    parser.add_argument("--baselines", nargs="*", default=list(ev_baselines.MODELS))
    parser.add_argument("--out", type=Path, default=Path("fewshot_cv.json"))
    return parser.parse_args()


def model_overrides(args: argparse.Namespace) -> dict:
    out: dict = {}
    if args.encoder_context and not args.no_context:
        out["context_fields"] = ("gal_b", "a_v", "host_mag", "host_color", "redshift")
    if args.learned_scale is not None:
        out["learned_scale"] = args.learned_scale
    if args.episode_distance:
        out["episode_distance"] = args.episode_distance
    if args.novelty_rule:
        out["novelty_rule"] = args.novelty_rule
    if args.tune_prior:
        out["tune_prior_weight"] = args.tune_prior == "yes"
    return out


def cut_arrays(table, ids, days_list=ev_inputs.PHASES) -> dict[str, dict[str, np.ndarray]]:  # noqa: ANN001
    """days -> featurize output of ``table``'s objects ``ids`` cut that long after first detection."""
    import pyarrow as pa
    import pyarrow.compute as pc

    sub = table.filter(pc.is_in(table.column("object_id"), pa.array(list(ids))))
    return {str(d): featurize(truncate(sub, float(d)), MAX_LEN) for d in days_list}


def main() -> None:  # noqa: PLR0915
    args = arguments()
    quiet_single_thread()
    cfg = load_train_config(args.config)
    t_start = time.perf_counter()

    import pyarrow as pa
    import pyarrow.compute as pc

    cv = load_bts_folds(args.data, args.folds, args.views, args.seed)  # every BTS object (and its event) is tested once
    bts, arrays, views, coarse, fold, same_event = cv.table, cv.arrays, cv.views, cv.coarse, cv.fold, cv.same_event
    contexts = {} if args.no_context else cv.contexts
    support_table = pa.concat_tables(
        [catalogs.read_catalogue(args.data / "slsne").table, catalogs.read_catalogue(args.data / "tde").table]
    )
    villar: dict[str, np.ndarray] = {}
    if "superphot_plus" in args.baselines:
        villar.update(ev_baselines.villar_table_features(bts))
        villar.update(ev_baselines.villar_table_features(support_table))
        for d in ev_inputs.PHASES:
            villar.update(
                {f"{d}:{k}": v for k, v in ev_baselines.villar_table_features(truncate(bts, float(d))).items()}
            )
        log.info("Villar fits: %d objects, %.0f s so far", len(villar), time.perf_counter() - t_start)
    bts_cut = cut_arrays(bts, arrays["object_id"]) if args.age_matched else {}
    overrides = model_overrides(args)

    keys = [(m, k) for m in args.modes for k in args.shots]
    scored: dict = {key: {"model": [], **{b: [] for b in args.baselines}} for key in keys}
    rare_all: list[str] = []
    model_meta: list[dict] = []
    for f in range(args.folds):
        train_rows, test_rows = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        data, stats = build_training_set(
            cv.take(train_rows),
            DataConfig(max_objects_per_class=args.max_per_class or None),
            args.val_fraction,
            args.seed + f,
            contexts=contexts or None,
        )
        attach_views(data, views, stats)
        arch = ProtoNetConfig(
            seq_channels=data.seq.shape[2], n_feats=data.feats.shape[1], **{**cfg.model.model_dump(), **overrides}
        )
        episodes = {
            "n_way": len(data.class_names),
            "k_shot": cfg.episodes.k_shot,
            "n_query": cfg.episodes.n_query,
            "per_epoch": args.per_epoch,
            "min_objects": 2,
            "held_out_per_epoch": cfg.episodes.held_out_per_epoch,
        }
        if args.epochs > 0:
            out = fit_local(data, arch, epochs=args.epochs, lr=cfg.lr, episodes=episodes, seed=args.seed + f)
            state, loss = out.state_dict, (out.history[0]["train_loss"], out.history[-1]["train_loss"])
        else:  # no episodes: the encoder as initialised (with learned_scale 0 it is not read at all)
            import torch

            from cosmic_ray.learn.train import loop_config, new_encoder

            torch.manual_seed(args.seed + f)
            enc = new_encoder(arch, loop_config(data, arch, epochs=0, lr=cfg.lr, episodes=episodes, seed=args.seed))
            state, loss = {k: v.detach().clone() for k, v in enc.state_dict().items()}, (float("nan"), float("nan"))
        clf = build_classifier(state, arch, data, stats.mean, stats.std, MAX_LEN)
        model_meta.append({"tuned_prior_weight": clf.tuned_prior_weight, "scores": clf.meta.get("prior_weight_scores")})
        if args.age_matched:
            labels_by_id = {str(o): data.class_names[k] for o, k in zip(data.object_id, data.labels, strict=True)}
            clf.age_prototypes = age_prototypes(clf, bts_cut, labels_by_id, contexts or None)
        ids = lambda rows: pa.array(list(arrays["object_id"][rows]))  # noqa: E731
        test_table = bts.filter(pc.is_in(bts.column("object_id"), ids(test_rows)))
        train_table = bts.filter(pc.is_in(bts.column("object_id"), ids(train_rows)))
        own_rare = train_rows[np.isin(coarse[train_rows], SUPPORT_ONLY)]
        fold_support = pa.concat_tables(
            [support_table, bts.filter(pc.is_in(bts.column("object_id"), ids(own_rare)))], promote_options="default"
        )
        inputs = ev_inputs.prepare_inputs(clf, test_table, train_table, fold_support, same_event)
        inputs.data = inputs.data.with_contexts(contexts)
        inputs.train = inputs.train.with_contexts(contexts)
        inputs.phases = {d: a.with_contexts(contexts) for d, a in inputs.phases.items()}
        if inputs.support is not None:
            inputs.support = inputs.support.with_contexts(contexts)
        support_phases = None
        if args.age_matched and inputs.support is not None:
            cut = cut_arrays(fold_support, inputs.support.object_id)
            support_phases = {d: ev_inputs.labelled_arrays(a).with_contexts(contexts) for d, a in cut.items()}
        rare_all = sorted(set(rare_all) | set(inputs.rare))
        for mode, k in keys:
            n_draws = args.draws if inputs.rare else 1
            chosen = ev_inputs.support_draws(inputs.support, inputs.rare, k, n_draws, args.seed)
            scored[(mode, k)]["model"].append(
                ev_scorers.score_protonet(
                    clf,
                    inputs.data,
                    inputs.phases,
                    inputs.support,
                    inputs.rare,
                    chosen,
                    inputs.classes,
                    mode=mode,
                    age_matched=args.age_matched,
                    support_phases=support_phases,
                )
            )
            if args.baselines:
                base = ev_baselines.score_baselines(inputs, chosen, mode, args.baselines, villar, args.seed)
                for name, s in base.items():
                    scored[(mode, k)][name].append(s)
        log.info(
            "fold %d/%d: %d train / %d test, loss %.3f -> %.3f, prior weight %s, %.0f s so far",
            f + 1,
            args.folds,
            len(train_rows),
            len(test_rows),
            *loss,
            clf.tuned_prior_weight,
            time.perf_counter() - t_start,
        )

    result: dict = {
        "command": " ".join(sys.argv),
        "seed": args.seed,
        "folds": args.folds,
        "draws": args.draws,
        "epochs": args.epochs,
        "per_epoch": args.per_epoch,
        "views": args.views,
        "rare": rare_all,
        "arch": {k: v for k, v in arch.to_dict().items() if k not in ("seq_channels", "n_feats")},
        "n_feats": arch.n_feats,
        "context_objects": len(contexts),
        "age_matched": args.age_matched,
        "prior_weight_per_fold": [m["tuned_prior_weight"] for m in model_meta],
        "results": {},
    }
    for mode, k in keys:
        pooled = {name: ev_scorers.concat_scored(parts) for name, parts in scored[(mode, k)].items() if parts}
        model = pooled.pop("model")
        report = ev_report.summarize(model, rare_all, "cv:protonet", k)
        report["ranking"] = ev_report.ranking_summary(model)
        report["open_set_auroc_by_class"] = open_set_by_class(model)
        report["intervals"] = ev_report.bootstrap_summary(model, rare_all, args.boot, args.seed)
        report["baselines"] = {}
        for name, s in pooled.items():
            b = ev_report.summarize(s, rare_all, f"cv:{name}", k)
            b["ranking"] = ev_report.ranking_summary(s)
            b["open_set_auroc_by_class"] = open_set_by_class(s)
            report["baselines"][name] = b
        if pooled:
            best = max(pooled, key=lambda n: report["baselines"][n]["macro_f1"])
            report["baseline"] = best
            report["baselines"][best]["intervals"] = ev_report.bootstrap_summary(
                pooled[best], rare_all, args.boot, args.seed
            )
            report["vs_baseline"] = ev_paired.paired_difference(model, pooled[best], args.boot, args.seed)
        result["results"][f"{mode}/K={k}"] = report
        print_summary(mode, k, report)
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))


def open_set_by_class(s: ev_scorers.Scored) -> dict[str, float]:
    from cosmic_ray.learn.evaluate.metrics import auroc

    return {c: float(auroc(s.open_pos[c], s.open_neg[c])) for c in s.open_pos if len(s.open_pos[c])}


def print_summary(mode: str, k: int, report: dict) -> None:
    iv = report["intervals"]
    rank = report["ranking"]
    parts = [
        f"{mode} K={k}: macro-F1 {report['macro_f1']:.3f} [{iv['macro_f1'][0]:.3f}, {iv['macro_f1'][1]:.3f}]",
        f"AUROC {report['open_set_auroc']:.3f}",
        "phases " + "/".join(f"{report['by_phase'][d]['macro_f1']:.3f}" for d in report["by_phase"]),
        "SLSN-I recall {:.2f}".format(report["classes"].get("SLSN-I", {}).get("recall", float("nan"))),
        "SLSN-I top5% {:.2f}".format(rank.get("SLSN-I", {}).get("recall_at_top", {}).get("5%", float("nan"))),
        "TDE top10% {:.2f}".format(rank.get("TDE", {}).get("recall_at_top", {}).get("10%", float("nan"))),
    ]
    if "baseline" in report:
        b = report["baselines"][report["baseline"]]
        v = report["vs_baseline"]["macro_f1"]
        parts.append(
            f"best baseline {report['baseline']} {b['macro_f1']:.3f} (diff {v['diff']:+.3f} "
            f"[{v['interval'][0]:+.3f}, {v['interval'][1]:+.3f}])"
        )
        parts.append("all: " + ", ".join(f"{n} {x['macro_f1']:.3f}" for n, x in report["baselines"].items()))
    print(" | ".join(parts), file=sys.stderr)


if __name__ == "__main__":
    main()
