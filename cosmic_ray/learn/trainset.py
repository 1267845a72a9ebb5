"""From featurized objects to a training set: coarse labels, eligible classes, split, normalisation."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cosmic_ray.core.config import DataConfig
from cosmic_ray.core.context import FEATURE_FIELDS
from cosmic_ray.core.errors import TrainingError
from cosmic_ray.core.taxonomy import OTHER, SUPPORT_ONLY, to_coarse
from cosmic_ray.learn.context_features import context_matrix, context_stats
from cosmic_ray.learn.episodes import fixed_validation
from cosmic_ray.learn.model import normalise_features
from cosmic_ray.learn.train import TrainingSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureStats:
    mean: np.ndarray
    std: np.ndarray

    def apply(self, feats: np.ndarray) -> np.ndarray:
        """Standardised features clipped to +-5; a missing feature stays NaN (the encoder knows it is missing)."""
        return normalise_features(feats, self.mean, self.std)


def feature_stats(feats: np.ndarray) -> FeatureStats:
    with np.errstate(all="ignore"):
        mean = np.nanmean(feats, axis=0)
        std = np.nanstd(feats, axis=0)
    mean = np.nan_to_num(mean, nan=0.0)
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
    return FeatureStats(mean.astype(np.float32), std.astype(np.float32))


def build_training_set(
    arrays: dict[str, np.ndarray],
    cfg: DataConfig,
    val_fraction: float,
    seed: int,
    views: dict[str, np.ndarray] | None = None,
    support_only: tuple[str, ...] = SUPPORT_ONLY,
    contexts: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> tuple[TrainingSet, FeatureStats]:
    """Select labelled objects of the trainable coarse classes and split them object-disjointly.

    The validation objects are fixed by a hash of their id (:func:`~cosmic_ray.learn.episodes.fixed_validation`),
    so every run validates (and the gate compares) on the same objects. Classes in
    ``support_only`` are left out: they are registered from support examples.

    Args:
        views: :func:`~cosmic_ray.learn.features.augmented_views` of (at least) these objects.
        contexts: object id -> its context (:data:`~cosmic_ray.core.context.FEATURE_FIELDS`; every
            field, redshift included: modes hide fields later); objects without one have none.

    Raises:
        TrainingError: fewer than two classes have enough objects.
    """
    rng = np.random.default_rng(seed)
    coarse = np.asarray([to_coarse(label) if label else OTHER for label in arrays["label"]], dtype=object)
    usable = (arrays["length"] >= cfg.min_points) & (coarse != OTHER) & ~np.isin(coarse, list(support_only))
    names, counts = np.unique(coarse[usable], return_counts=True)
    classes = sorted(str(n) for n, c in zip(names, counts, strict=False) if c >= cfg.min_objects_per_class)
    if len(classes) < 2:
        raise TrainingError(
            f"need at least 2 classes with >= {cfg.min_objects_per_class} objects of >= {cfg.min_points} points; "
            f"found {dict(zip(names.tolist(), counts.tolist(), strict=False))}. Ingest a labelled catalogue first."
        )
    per_class: list[np.ndarray] = []
    for c in classes:
        members = np.flatnonzero(usable & (coarse == c))
        if cfg.max_objects_per_class and len(members) > cfg.max_objects_per_class:
            members = np.sort(rng.choice(members, cfg.max_objects_per_class, replace=False))
        per_class.append(members)
    rows = np.concatenate(per_class)
    labels = np.asarray([classes.index(c) for c in coarse[rows]], dtype=np.int64)
    is_val = fixed_validation(arrays["object_id"][rows], labels, val_fraction)
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    stats = feature_stats(arrays["feats"][rows][train_idx])
    log.info(
        "training set: %d objects, classes %s",
        len(rows),
        dict(zip(classes, np.bincount(labels).tolist(), strict=False)),
    )
    data = TrainingSet(
        object_id=arrays["object_id"][rows],
        labels=labels,
        class_names=classes,
        seq=arrays["seq"][rows],
        length=arrays["length"][rows],
        feats=stats.apply(arrays["feats"][rows]),
        train_idx=train_idx,
        val_idx=val_idx,
        class_counts=np.asarray([int(np.sum(usable & (coarse == c))) for c in classes], dtype=np.int64),
    )
    if contexts is not None:
        attach_context(data, contexts)
    if views is not None:
        attach_views(data, views, stats)
    return data, stats


def attach_context(data: TrainingSet, contexts: Mapping[str, Mapping[str, Any] | None]) -> TrainingSet:
    """Give ``data`` its objects' context, standardised on its training objects (every field shown).

    Nothing is attached when no object has any context."""
    matrix = context_matrix([contexts.get(str(o)) for o in data.object_id], len(data.object_id), "with_redshift")
    if not np.isfinite(matrix).any():
        return data
    stats = context_stats(matrix[data.train_idx])
    data.context = stats.standardise(matrix).astype(np.float32)
    data.context_mean, data.context_std = stats.mean, stats.std
    data.context_fields = FEATURE_FIELDS
    return data


def attach_views(data: TrainingSet, views: dict[str, np.ndarray], stats: FeatureStats) -> TrainingSet:
    """Give ``data`` the augmented views of its objects (:func:`~cosmic_ray.learn.features.augmented_views`).

    Raises:
        TrainingError: an object of ``data`` has no views.
    """
    if not len(views["object_id"]):
        return data
    n_views = int((views["object_id"] == views["object_id"][0]).sum())
    first = {o: i for i, o in enumerate(views["object_id"][::n_views])}
    missing = [o for o in data.object_id if o not in first]
    if missing:
        raise TrainingError(f"augmented views lack {len(missing)} objects, e.g. {missing[:3]}")
    vrows = (np.asarray([first[o] for o in data.object_id])[:, None] * n_views + np.arange(n_views)).ravel()
    data.aug_seq = views["seq"][vrows]
    data.aug_length = views["length"][vrows]
    data.aug_feats = stats.apply(views["feats"][vrows])
    data.n_views = n_views
    return data


def support_only_objects(
    arrays: dict[str, np.ndarray], classes: tuple[str, ...] = SUPPORT_ONLY, min_points: int = 3
) -> dict[str, np.ndarray]:
    """Row indices of each support-only class's labelled objects (to register with ``with_class``)."""
    coarse = np.asarray([to_coarse(label) if label else OTHER for label in arrays["label"]], dtype=object)
    out = {}
    for c in classes:
        rows = np.flatnonzero((coarse == c) & (arrays["length"] >= min_points))
        if len(rows):
            out[c] = rows
    return out
