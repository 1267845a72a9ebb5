"""From featurized objects to a training set: coarse labels, eligible classes, split, normalisation."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from cosmic_ray.config import DataConfig
from cosmic_ray.episodes import stratified_split
from cosmic_ray.errors import TrainingError
from cosmic_ray.taxonomy import OTHER, to_coarse
from cosmic_ray.train import TrainingSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureStats:
    mean: np.ndarray
    std: np.ndarray

    def apply(self, feats: np.ndarray) -> np.ndarray:
        z = (feats - self.mean) / self.std
        return np.clip(np.nan_to_num(z, nan=0.0, posinf=5.0, neginf=-5.0), -5, 5).astype(np.float32)


def feature_stats(feats: np.ndarray) -> FeatureStats:
    with np.errstate(all="ignore"):
        mean = np.nanmean(feats, axis=0)
        std = np.nanstd(feats, axis=0)
    mean = np.nan_to_num(mean, nan=0.0)
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
    return FeatureStats(mean.astype(np.float32), std.astype(np.float32))


def build_training_set(arrays: dict[str, np.ndarray], cfg: DataConfig, val_fraction: float, seed: int) -> tuple[TrainingSet, FeatureStats]:
    """Select labelled objects of the trainable coarse classes and split them object-disjointly.

    Raises:
        TrainingError: fewer than two classes have enough objects.
    """
    rng = np.random.default_rng(seed)
    coarse = np.asarray([to_coarse(label) if label else OTHER for label in arrays["label"]], dtype=object)
    usable = (arrays["length"] >= cfg.min_points) & (coarse != OTHER)
    names, counts = np.unique(coarse[usable], return_counts=True)
    classes = sorted(str(n) for n, c in zip(names, counts) if c >= cfg.min_objects_per_class)
    if len(classes) < 2:
        raise TrainingError(
            f"need at least 2 classes with >= {cfg.min_objects_per_class} objects of >= {cfg.min_points} points; "
            f"found {dict(zip(names.tolist(), counts.tolist()))}. Ingest a labelled catalogue first."
        )
    rows = []
    for c in classes:
        members = np.flatnonzero(usable & (coarse == c))
        if cfg.max_objects_per_class and len(members) > cfg.max_objects_per_class:
            members = np.sort(rng.choice(members, cfg.max_objects_per_class, replace=False))
        rows.append(members)
    rows = np.concatenate(rows)
    labels = np.asarray([classes.index(c) for c in coarse[rows]], dtype=np.int64)
    train_idx, val_idx = stratified_split(labels, val_fraction, rng)
    stats = feature_stats(arrays["feats"][rows][train_idx])
    log.info("training set: %d objects, classes %s", len(rows), dict(zip(classes, np.bincount(labels).tolist())))
    return (
        TrainingSet(
            object_id=arrays["object_id"][rows],
            labels=labels,
            class_names=classes,
            seq=arrays["seq"][rows],
            length=arrays["length"][rows],
            feats=stats.apply(arrays["feats"][rows]),
            train_idx=train_idx,
            val_idx=val_idx,
        ),
        stats,
    )
