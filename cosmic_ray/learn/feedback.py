"""Expert answers into a training table: class answers relabel (or add) objects, bogus ones leave.

Pure functions over Arrow tables in the lake schema; :mod:`cosmic_ray.ops.feedback` reads the
answers from the event store and the rows from the lake, the retrain calls it.

Rules (the newest answer of kind ``class`` or ``bogus`` per object decides; ``interesting`` does
not touch training):

- ``class``: every row of the object carries the expert's class as its label; an object that is not
  in the labelled sources is added from the rest of the lake (e.g. a live-path alert);
- ``bogus``: the object's rows are left out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from cosmic_ray.core.feedback import ExpertAnswer, latest_by_object, provenance

log = logging.getLogger(__name__)

#: Answer kinds that change the training set.
TRAINING_KINDS: tuple[str, ...] = ("class", "bogus")


@dataclass(frozen=True)
class ExpertLabelling:
    """What the answers did to a training table, and their provenance for the run's lineage.

    Attributes:
        answers: every answer of :data:`TRAINING_KINDS` that was read (the lineage's dataset).
        relabelled: object id -> the expert's class, for the objects now labelled by an expert.
        added: of those, the objects taken from outside the labelled sources.
        excluded: objects left out as bogus.
    """

    answers: list[ExpertAnswer] = field(default_factory=list)
    relabelled: dict[str, str] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)

    @property
    def provenance(self) -> dict[str, object]:
        return {
            **provenance(self.answers),
            "relabelled": len(self.relabelled),
            "added": len(self.added),
            "excluded": len(self.excluded),
        }


def decisions(answers: list[ExpertAnswer]) -> tuple[dict[str, str], set[str]]:
    """(object -> class, bogus objects) from the newest training answer of each object."""
    latest = latest_by_object(answers, TRAINING_KINDS)
    classes = {o: a.class_name for o, a in latest.items() if a.kind == "class" and a.class_name}
    bogus = {o for o, a in latest.items() if a.kind == "bogus"}
    return classes, bogus


def apply_expert_labels(
    table: pa.Table, others: pa.Table, answers: list[ExpertAnswer]
) -> tuple[pa.Table, ExpertLabelling]:
    """The training table with the experts' classes on their objects and bogus objects removed.

    Args:
        table: the labelled rows the retrain would train on (lake schema).
        others: lake rows of the answered objects from any source (those not in ``table`` are added).
        answers: the stored answers (any kinds: only :data:`TRAINING_KINDS` are used).
    """
    used = [a for a in answers if a.kind in TRAINING_KINDS]
    classes, bogus = decisions(used)
    if not used:
        return table, ExpertLabelling()
    present = set(pc.unique(table.column("object_id")).to_pylist())
    added = sorted(o for o in classes if o not in present)
    if added:
        extra = others.filter(pc.is_in(others.column("object_id"), pa.array(added)))
        extra = extra.select(table.column_names).cast(table.schema)
        table = pa.concat_tables([table, extra])
        added = sorted(set(pc.unique(extra.column("object_id")).to_pylist()))
    if classes:
        ids = sorted(classes)
        index = pc.index_in(table.column("object_id"), value_set=pa.array(ids))
        expert = pc.take(pa.array([classes[o] for o in ids], pa.string()), index)
        table = table.set_column(
            table.schema.get_field_index("label"),
            table.schema.field("label"),
            pc.coalesce(expert, table.column("label")),
        )
    if bogus:
        table = table.filter(pc.invert(pc.is_in(table.column("object_id"), pa.array(sorted(bogus)))))
    in_table = set(pc.unique(table.column("object_id")).to_pylist())
    result = ExpertLabelling(
        answers=used,
        relabelled={o: c for o, c in classes.items() if o in in_table},
        added=added,
        excluded=sorted(bogus & present),
    )
    log.info(
        "expert labels: %d objects labelled by experts (%d added from the lake), %d bogus left out",
        len(result.relabelled),
        len(added),
        len(result.excluded),
    )
    return table, result
