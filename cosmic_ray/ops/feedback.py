"""The retrain's expert-feedback step: read the stored answers, put them into the training table.

:func:`expert_training_table` is what :func:`cosmic_ray.ops.pipeline.train_from_lake` calls between
reading the labelled lake and featurizing it; the run then records the answers' provenance in its
MLflow dataset lineage (:func:`cosmic_ray.learn.registry.log_expert_labels`).
"""

from __future__ import annotations

import logging

import pyarrow as pa

from cosmic_ray.core.config import Settings
from cosmic_ray.core.feedback import ExpertAnswer
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.learn.feedback import TRAINING_KINDS, ExpertLabelling, apply_expert_labels, decisions
from cosmic_ray.serve.labels import Labels
from cosmic_ray.serve.store import Store

log = logging.getLogger(__name__)


def stored_answers(settings: Settings, kinds: tuple[str, ...] | None = TRAINING_KINDS) -> list[ExpertAnswer]:
    """The event store's expert answers (of ``kinds``), oldest first."""
    store = Store.open(settings.event_store_url)
    try:
        return Labels(store.engine).all(kinds)
    finally:
        store.close()


def expert_training_table(
    settings: Settings, lake: Lake, table: pa.Table, answers: list[ExpertAnswer] | None = None
) -> tuple[pa.Table, ExpertLabelling]:
    """``table`` (the labelled lake rows) with the experts' classes applied and bogus objects left out.

    Args:
        answers: the answers to apply (default: every stored one).
    """
    answers = stored_answers(settings) if answers is None else answers
    classes, _ = decisions(answers)
    others = lake.read_objects(sorted(classes)) if classes else table.slice(0, 0)
    return apply_expert_labels(table, others, answers)
