"""The main job's stages as library functions: ingest the defaults, train from the lake, register.

Entrypoints (CLI, jobs/retrain.py, tests) call these and check what they return.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmic_ray.core.config import GateConfig, Settings, TrainConfig
from cosmic_ray.core.sample import data_root
from cosmic_ray.ingest.batch import IngestSummary, ingest
from cosmic_ray.ingest.lake import Lake

log = logging.getLogger(__name__)

LABELLED_SOURCES = ["catalog", "ztf_bts", "simulated"]
N_VIEWS = 4  # augmented views per training object (features.augmented_views)


@dataclass(frozen=True)
class DefaultInputs:
    alerts: list[Path]
    catalogs: list[Path]
    simulated: bool
    sample: bool = False  # the small real sample shipped with the package (no shared data here)


def default_inputs(settings: Settings) -> DefaultInputs:
    """Real data from ``COSMIC_RAY_SHARED_DATA`` when present; else the real sample shipped with the
    package (:mod:`cosmic_ray.core.sample`); only without both, a SIMULATED stream and catalogue."""
    root = data_root(settings.shared_data_dir)
    if root is not None:
        return DefaultInputs(alerts=[root.alerts], catalogs=[root.labelled], simulated=False, sample=root.shipped)
    # deferred: the training stack (torch, Ray Train, MLflow) loads only for the step that needs it
    from cosmic_ray.ingest import simulate

    sim = settings.home_dir / "simulated"
    log.warning("no shared data at %s: using a SIMULATED alert stream and catalogue in %s", settings.shared_data, sim)
    catalog = simulate.write_labelled_catalog(sim / "SIMULATED_labelled_lightcurves.csv.gz")
    simulate.write_alert_stream(sim / "alerts")
    return DefaultInputs(alerts=[sim / "alerts"], catalogs=[catalog], simulated=True)


def ingest_defaults(settings: Settings, inputs: DefaultInputs) -> list[IngestSummary]:
    alerts: list[str | Path] = [*inputs.alerts]
    catalogs: list[str | Path] = [*inputs.catalogs]
    return [
        ingest("ztf", alerts, settings.lake_dir, settings.quarantine_dir, store_url=settings.event_store_url),
        ingest("catalog", catalogs, settings.lake_dir, settings.quarantine_dir, store_url=settings.event_store_url),
    ]


@dataclass
class TrainReport:
    model_name: str
    version: str
    run_id: str
    classes: list[str]
    metrics: dict[str, float]
    history: list[dict[str, float]]
    gate: dict[str, Any]
    seconds: float
    dataset: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lake_snapshot(lake: Lake, sources: list[str] | None = None) -> dict[str, Any]:
    """File list + hashes + row counts: what a model was trained on."""
    # deferred: the training stack (torch, Ray Train, MLflow) loads only for the step that needs it
    import pyarrow.parquet as pq

    files = []
    for path in lake.files():
        if sources and not any(f"source={s}" in str(path) for s in sources):
            continue
        files.append(
            {
                "path": str(path.relative_to(lake.root)),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "rows": pq.ParquetFile(path).metadata.num_rows,
            }
        )
    return {"lake": str(lake.root), "files": files, "rows": sum(f["rows"] for f in files)}


def train_from_lake(
    settings: Settings, cfg: TrainConfig, gate: GateConfig | None = None, storage_path: Path | None = None
) -> TrainReport:
    """Featurize the labelled lake with Ray Data, train with Ray Train, log, register and gate.

    Raises:
        TrainingError: too little labelled data.
    """
    # deferred: the training stack (torch, Ray Train, MLflow) loads only for the step that needs it
    from cosmic_ray.learn import registry
    from cosmic_ray.learn.classifier import build_classifier
    from cosmic_ray.learn.evaluate.figures import confusion_png, embedding_png
    from cosmic_ray.learn.evaluate.metrics import classification_metrics
    from cosmic_ray.learn.features import augmented_views, featurize_with_ray
    from cosmic_ray.learn.model import ProtoNetConfig
    from cosmic_ray.learn.train import fit
    from cosmic_ray.learn.trainset import attach_views, build_training_set, support_only_objects

    start = time.perf_counter()
    gate = gate or GateConfig()
    lake = Lake(settings.lake_dir)
    table = lake.read(sources=LABELLED_SOURCES)
    # deferred: the training stack (torch, Ray Train, MLflow) loads only for the step that needs it
    from cosmic_ray.ops.feedback import expert_training_table

    table, expert = expert_training_table(settings, lake, table)  # expert labels: classes on, bogus out
    log.info("featurizing %d labelled points with Ray Data", table.num_rows)
    arrays = featurize_with_ray(table, cfg.data.max_len)
    # every object's context (host, Galactic latitude, redshift...) from the lake's context table
    contexts = {row["object_id"]: row for row in lake.read_context().to_pylist()}
    data, stats = build_training_set(arrays, cfg.data, cfg.validation_fraction, cfg.seed, contexts=contexts)
    # physics-respecting augmented views of the training objects (driver side: needs light-curve)
    # deferred: the training stack (torch, Ray Train, MLflow) loads only for the step that needs it
    import pyarrow as pa
    import pyarrow.compute as pc

    views = augmented_views(
        table.filter(pc.is_in(table.column("object_id"), pa.array(list(data.object_id)))),
        N_VIEWS,
        cfg.seed,
        cfg.data.max_len,
    )
    attach_views(data, views, stats)
    arch = ProtoNetConfig(seq_channels=data.seq.shape[2], n_feats=data.feats.shape[1], **cfg.model.model_dump())
    episodes = cfg.episodes.model_dump()
    # an episode cannot ask for more classes than the data has; small classes take part with repeats
    episodes["n_way"] = min(episodes["n_way"], len(data.class_names))
    episodes["min_objects"] = 2
    log.info("training on %d objects of %s with Ray Train", len(data.labels), data.class_names)
    out = fit(
        data,
        arch,
        epochs=cfg.epochs,
        lr=cfg.lr,
        episodes=episodes,
        seed=cfg.seed,
        num_workers=cfg.scaling.num_workers,
        use_gpu=cfg.scaling.use_gpu,
        storage_path=storage_path or settings.checkpoints_dir,
    )
    dataset = lake_snapshot(lake, LABELLED_SOURCES)
    dataset["objects"] = int(len(data.labels))
    dataset["classes"] = {c: int((data.labels == k).sum()) for k, c in enumerate(data.class_names)}
    dataset["expert_labels"] = expert.provenance
    classifier = build_classifier(
        out.state_dict,
        arch,
        data,
        stats.mean,
        stats.std,
        cfg.data.max_len,
        meta={
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "dataset_rows": dataset["rows"],
            "objects": dataset["objects"],
        },
    )
    # rare (support-only) classes of the lake are registered from their examples, not trained
    for name, rows in support_only_objects(arrays, min_points=cfg.data.min_points).items():
        support_contexts = [contexts.get(str(o)) for o in arrays["object_id"][rows]]
        classifier = classifier.with_class(
            name, arrays["seq"][rows], arrays["length"][rows], arrays["feats"][rows], support_contexts
        )
    # validation: the fixed validation objects (features stored normalised -> raw via stats)
    val = data.val_idx
    raw_feats = data.feats[val] * stats.std + stats.mean
    preds = classifier.predict_arrays(data.object_id[val], data.seq[val], data.length[val], raw_feats, neighbours=0)
    truth = [data.class_names[k] for k in data.labels[val]]
    predicted = [p.label for p in preds]
    evaluation = classification_metrics(truth, predicted, classifier.class_names)
    metrics = {
        "balanced_accuracy": evaluation["balanced_accuracy"],
        "macro_f1": evaluation["macro_f1"],
        "accuracy": evaluation["accuracy"],
        "train_seconds": out.seconds,
        "episodes_per_second": out.episodes_per_second,
        "chance_accuracy": 1.0 / len(data.class_names),
    }
    params = {
        "train": cfg.model_dump(),
        "arch": arch.to_dict(),
        "classes": classifier.class_names,
        "gate": gate.model_dump(),
        "augmented_views": N_VIEWS,
    }
    with tempfile.TemporaryDirectory() as tmp:
        figures = {
            "confusion_matrix": Path(tmp) / "confusion_matrix.png",
            "embedding_map": Path(tmp) / "embedding_map.png",
        }
        confusion_png(
            np.asarray(truth, dtype=object),
            np.asarray(predicted, dtype=object),
            classifier.class_names,
            figures["confusion_matrix"],
        )
        emb = classifier.embed(data.seq[val], data.length[val], raw_feats)
        embedding_png(
            emb,
            np.asarray(truth, dtype=object),
            classifier.prototypes,
            classifier.class_names,
            figures["embedding_map"],
        )
        registered = registry.log_and_register(
            settings,
            classifier,
            params,
            out.history,
            metrics,
            dataset=dataset,
            artifacts={"validation": evaluation},
            figures=figures,
        )
    if expert.answers:
        registry.log_expert_labels(settings, registered.run_id, expert)
    validation = registry.GateData(
        object_id=data.object_id[val],
        truth=np.asarray(truth, dtype=object),
        seq=data.seq[val],
        length=data.length[val],
        feats=raw_feats,
        classes=list(data.class_names),
        candidate_pred=np.asarray(predicted, dtype=object),
    )
    decision = registry.promote_if_better(settings, registered, gate.metric, gate.min_gain, validation=validation)
    return TrainReport(
        model_name=registered.name,
        version=registered.version,
        run_id=registered.run_id,
        classes=list(classifier.class_names),
        metrics=metrics,
        history=out.history,
        gate=asdict(decision),
        seconds=round(time.perf_counter() - start, 2),
        dataset={
            "rows": dataset["rows"],
            "files": len(dataset["files"]),
            "objects": dataset["objects"],
            "classes": dataset["classes"],
        },
    )
