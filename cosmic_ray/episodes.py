"""N-way K-shot episode sampling (plain numpy, no Ray)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Episode:
    classes: np.ndarray  # (n_way,) class indices into the label vocabulary
    support: np.ndarray  # (n_way, k_shot) object row indices
    query: np.ndarray  # (n_way, n_query) object row indices, disjoint from support


def eligible_classes(labels: np.ndarray, need: int) -> np.ndarray:
    """Class indices with at least ``need`` objects."""
    values, counts = np.unique(labels, return_counts=True)
    return values[counts >= need]


def sample_episode(labels: np.ndarray, n_way: int, k_shot: int, n_query: int, rng: np.random.Generator) -> Episode:
    """One episode over integer ``labels`` (one per object).

    Support and query objects are disjoint within each class. ``n_way`` is reduced to the
    number of classes that have ``k_shot + n_query`` objects if fewer exist.

    Raises:
        ValueError: fewer than two classes have enough objects.
    """
    classes = eligible_classes(labels, k_shot + n_query)
    if len(classes) < 2:
        raise ValueError(f"need 2 classes with >= {k_shot + n_query} objects; have {len(classes)}")
    chosen = rng.choice(classes, size=min(n_way, len(classes)), replace=False)
    support, query = [], []
    for c in chosen:
        members = rng.permutation(np.flatnonzero(labels == c))[: k_shot + n_query]
        support.append(members[:k_shot])
        query.append(members[k_shot:])
    return Episode(classes=chosen, support=np.stack(support), query=np.stack(query))


def stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator, min_val: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Object-disjoint train/validation split keeping every class on both sides where it can."""
    train, val = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_val = max(min_val, int(round(fraction * len(members)))) if len(members) > min_val else 0
        val.extend(members[:n_val])
        train.extend(members[n_val:])
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(val, dtype=np.int64))
