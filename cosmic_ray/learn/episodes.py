"""N-way K-shot episode sampling (plain numpy, no Ray)."""

from __future__ import annotations

import hashlib
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


def objects_needed(k_shot: int, n_query: int, min_objects: int | None = None) -> int:
    """Objects a class needs to take part in an episode (see :func:`sample_episode`)."""
    return k_shot + n_query if min_objects is None else max(2, min(min_objects, k_shot + n_query))


def sample_episode(
    labels: np.ndarray,
    n_way: int,
    k_shot: int,
    n_query: int,
    rng: np.random.Generator,
    min_objects: int | None = None,
) -> Episode:
    """One episode over integer ``labels`` (one per object).

    Support and query objects are disjoint within each class. By default a class takes part only
    if it has ``k_shot + n_query`` objects. With ``min_objects`` (>= 2), classes with at least that
    many objects take part too: a small class's objects are split between support and query
    (disjoint) and each side is filled up by drawing its own objects again (the training loop gives
    repeats different augmented views). ``n_way`` is reduced to the eligible classes if fewer exist.

    Raises:
        ValueError: fewer than two classes are eligible.
    """
    need = objects_needed(k_shot, n_query, min_objects)
    classes = eligible_classes(labels, need)
    if len(classes) < 2:
        raise ValueError(f"need 2 classes with >= {need} objects; have {len(classes)}")
    chosen = rng.choice(classes, size=min(n_way, len(classes)), replace=False)
    support, query = [], []
    for c in chosen:
        members = rng.permutation(np.flatnonzero(labels == c))
        if len(members) >= k_shot + n_query:
            support.append(members[:k_shot])
            query.append(members[k_shot : k_shot + n_query])
            continue
        n_q = min(len(members) - 1, max(1, round(len(members) * n_query / (k_shot + n_query))))
        sup, qry = members[n_q:], members[:n_q]
        support.append(np.concatenate([sup, rng.choice(sup, k_shot - len(sup))]) if len(sup) < k_shot else sup[:k_shot])
        query.append(np.concatenate([qry, rng.choice(qry, n_query - len(qry))]))
    return Episode(classes=chosen, support=np.stack(support), query=np.stack(query))


def held_out_classes(classes: np.ndarray, per_epoch: int, epoch: int, seed: int) -> np.ndarray:
    """The classes left out of epoch ``epoch``'s episodes: a rotating base/novel split.

    The classes are shuffled once (``seed``) and dealt ``per_epoch`` at a time, epoch after
    epoch, so within ``ceil(len(classes) / per_epoch)`` epochs every class has been the novel one
    once, and each epoch's episodes train on classes the model then has to meet as new. At least
    two classes always stay in the episodes (fewer held out otherwise). The same for every worker.
    """
    classes = np.asarray(classes)
    n = min(int(per_epoch), len(classes) - 2)
    if n <= 0:
        return classes[:0]
    order = classes[np.random.default_rng([seed, 7919]).permutation(len(classes))]
    return np.sort(order[(epoch * n + np.arange(n)) % len(classes)])


def object_hash(object_id: str, salt: str = "cosmic-ray-validation") -> int:
    """A stable 32-bit hash of an object id (the same in every process and run)."""
    return int.from_bytes(hashlib.sha256(f"{salt}:{object_id}".encode()).digest()[:4], "big")


def fixed_validation(object_ids: np.ndarray, labels: np.ndarray, fraction: float, min_val: int = 1) -> np.ndarray:
    """Boolean mask of the fixed validation objects: in each class, the ``fraction`` of objects with
    the lowest :func:`object_hash` (at least ``min_val`` where the class has 3 or more). The choice
    depends on the object ids alone, so runs validate, and the gate compares models, on the same
    objects, and a model never trained on them."""
    hashes = np.asarray([object_hash(str(o)) for o in object_ids], dtype=np.int64)
    mask = np.zeros(len(object_ids), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_val = max(min_val if len(members) >= 3 else 0, int(round(fraction * len(members))))
        mask[members[np.argsort(hashes[members], kind="stable")[:n_val]]] = True
    return mask


def stratified_split(
    labels: np.ndarray, fraction: float, rng: np.random.Generator, min_val: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Object-disjoint train/validation split keeping every class on both sides where it can."""
    train: list[int] = []
    val: list[int] = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_val = max(min_val, int(round(fraction * len(members)))) if len(members) > min_val else 0
        val.extend(members[:n_val])
        train.extend(members[n_val:])
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(val, dtype=np.int64))
