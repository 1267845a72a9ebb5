"""Featurized evaluation inputs: labelled arrays, the data truncated at each phase, the support draws.

:func:`prepare_inputs` featurizes the data, the support and the baseline's training table once;
:func:`support_draws` picks, per seeded draw, the K support objects of each rare class that both
scorers (:mod:`~cosmic_ray.learn.evaluate.scorers`) get.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from cosmic_ray.core.taxonomy import OTHER, to_coarse
from cosmic_ray.learn.evaluate.context import ContextLookup, context_matrix, context_rows
from cosmic_ray.learn.features import featurize, truncate

if TYPE_CHECKING:
    from cosmic_ray.learn.classifier import ProtoNetClassifier

log = logging.getLogger(__name__)

PHASES = (3, 10, 30)  # days after the first detection at which the light curves are cut

_ZTF_NAME = re.compile(r"^ZTF\d{2}[a-z]{7}$")


@dataclass
class LabelledArrays:
    """Featurized objects with coarse labels (what the scorers read)."""

    object_id: np.ndarray  # (N,)
    coarse: np.ndarray  # (N,) coarse labels
    seq: np.ndarray  # (N, L, C)
    length: np.ndarray  # (N,)
    feats: np.ndarray  # (N, F) raw (not normalised)
    # (N, len(FEATURE_FIELDS)) per-object context, NaN where missing or hidden; None: no context at all
    context: np.ndarray | None = None
    context_shown: tuple[str, ...] = ()  # the context fields the current mode shows (cosmic_ray.core.context)

    def take(self, rows: np.ndarray) -> LabelledArrays:
        """The objects at ``rows`` (indices or a boolean mask)."""
        return LabelledArrays(
            self.object_id[rows],
            self.coarse[rows],
            self.seq[rows],
            self.length[rows],
            self.feats[rows],
            None if self.context is None else self.context[rows],
            self.context_shown,
        )

    @property
    def contexts(self) -> list[dict[str, float | None]] | None:
        """Per object its context as the classifier takes it (one mapping, None where unknown); None: no context."""
        return context_rows(self.context)

    def with_contexts(self, by_id: Mapping[str, Mapping[str, Any]]) -> LabelledArrays:
        """A copy whose objects carry their context from ``by_id`` (object id -> mapping; absent: none)."""
        return dataclasses.replace(self, context=context_matrix(self.object_id, by_id))

    def __len__(self) -> int:
        return len(self.object_id)


def labelled_arrays(arrays: dict[str, np.ndarray], min_points: int = 1) -> LabelledArrays:
    """Featurize output -> coarse labels; objects with fewer than ``min_points`` detections dropped."""
    coarse = np.asarray([to_coarse(label) if label else OTHER for label in arrays["label"]], dtype=object)
    keep = np.flatnonzero(arrays["length"] >= min_points)
    return LabelledArrays(
        arrays["object_id"][keep], coarse[keep], arrays["seq"][keep], arrays["length"][keep], arrays["feats"][keep]
    )


def featurize_labelled(table: pa.Table, max_len: int, min_points: int = 1) -> LabelledArrays:
    """:func:`~cosmic_ray.learn.features.featurize` then :func:`labelled_arrays`."""
    return labelled_arrays(featurize(table, max_len), min_points)


def is_survey_object(object_id: str) -> bool:
    """Whether an object id is a ZTF object name (the survey the model is trained and evaluated on)."""
    return bool(_ZTF_NAME.match(str(object_id)))


def support_draws(
    support: LabelledArrays, rare: list[str], k: int, draws: int, seed: int
) -> list[dict[str, np.ndarray]]:
    """For each draw, class -> K row indices of ``support`` (seeded; fewer if the class has fewer).

    Support objects of the survey itself (:func:`is_survey_object`) are drawn first; objects of
    other surveys (the SLSN and TDE catalogues) fill up K when the survey has fewer than K.
    """
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


@dataclass
class EvaluationInputs:
    """Featurized evaluation inputs (what :func:`~cosmic_ray.learn.evaluate.scorers.score_all` needs).

    Built by :func:`prepare_inputs`.
    """

    data: LabelledArrays
    phases: dict[str, LabelledArrays]  # days -> the data truncated that long after first detection
    support: LabelledArrays | None
    train: LabelledArrays
    classes: list[str]
    rare: list[str]


def prepare_inputs(
    classifier: ProtoNetClassifier,
    data_table: pa.Table,
    train_table: pa.Table,
    support_table: pa.Table | None = None,
    same_event: Callable[[str], str] | None = None,
    phases: tuple[int, ...] = PHASES,
    min_support_points: int = 3,
    context: ContextLookup | None = None,
) -> EvaluationInputs:
    """Featurize the data (in full and truncated at each phase), the support and the training table.

    * The evaluated classes are the model's classes plus the rare classes that have support
      objects; data objects of other classes (``Other`` included) are left out of the
      closed-set figures.
    * Support and training objects of the same event as a data object (``same_event`` maps an
      object id to an event id; identity by default) are dropped, so no event sits on both sides.
    * ``context`` (object id -> context row) fills each object's unmasked context matrix
      (:mod:`~cosmic_ray.learn.evaluate.context`); the modes mask it later.

    Raises:
        ValueError: no data object of an evaluated class, or no training object left.
    """
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
    if context is not None:

        def attach(a: LabelledArrays) -> LabelledArrays:
            return dataclasses.replace(a, context=context_matrix(a.object_id, context))

        data, train = attach(data), attach(train)
        support = attach(support) if support is not None else None
        phase_arrays = {days: attach(a) for days, a in phase_arrays.items()}
    return EvaluationInputs(data, phase_arrays, support, train, classes, rare)
