"""The event store's expert labels: answers about objects, with who and when (never edited, only added).

Example:
    >>> from cosmic_ray.serve.db import open_engine
    >>> labels = Labels(open_engine("sqlite:///:memory:"))
    >>> labels.add("ZTF18abc", "class", "SN Ia", "", "vera").kind
    'class'
    >>> [a.class_name for a in labels.for_object("ZTF18abc")]
    ['SN Ia']
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Row, func, insert, select
from sqlalchemy.engine import Engine

from cosmic_ray.core.feedback import ExpertAnswer, FeedbackError, check_answer
from cosmic_ray.serve.db import ExpertLabel, StoreError, utcnow

log = logging.getLogger(__name__)

#: Most answers one object keeps (a flood of answers about one object is refused, not stored).
MAX_PER_OBJECT = 500


def _answer(r: Row[Any]) -> ExpertAnswer:
    return ExpertAnswer(r.object_id, r.kind, r.class_name, r.note or "", r.username, r.created_at)


class Labels:
    """Expert labels over the store's engine. Safe to share across threads."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def add(self, object_id: str, kind: str, class_name: str | None, note: str, username: str) -> ExpertAnswer:
        """Store one answer, now, by ``username``.

        Raises:
            StoreError: the answer breaks a rule (:func:`cosmic_ray.core.feedback.check_answer`) or the
                object has :data:`MAX_PER_OBJECT` answers already.
        """
        try:
            check_answer(kind, class_name, note)
        except FeedbackError as exc:
            raise StoreError(str(exc)) from exc
        if not object_id or len(object_id) > 128 or "\x00" in object_id:
            raise StoreError("object id must be 1-128 characters, no NUL")
        answer = ExpertAnswer(object_id, kind, class_name or None, note, username, utcnow())
        with self.engine.begin() as conn:
            n = conn.execute(
                select(func.count()).select_from(ExpertLabel).where(ExpertLabel.object_id == object_id)
            ).scalar_one()
            if n >= MAX_PER_OBJECT:
                raise StoreError(f"object {object_id!r} has {n} labels already (the limit)")
            conn.execute(
                insert(ExpertLabel).values(
                    object_id=object_id,
                    kind=kind,
                    class_name=answer.class_name,
                    note=note,
                    username=username,
                    created_at=answer.created_at,
                )
            )
        log.info("expert label %s on %s by %s", kind, object_id, username)
        return answer

    def for_object(self, object_id: str) -> list[ExpertAnswer]:
        """The object's answers, oldest first."""
        q = select(ExpertLabel).where(ExpertLabel.object_id == object_id).order_by(ExpertLabel.id)
        with self.engine.connect() as conn:
            return [_answer(r) for r in conn.execute(q)]

    def all(self, kinds: tuple[str, ...] | None = None) -> list[ExpertAnswer]:
        """Every answer (of ``kinds``), oldest first."""
        q = select(ExpertLabel).order_by(ExpertLabel.id)
        if kinds:
            q = q.where(ExpertLabel.kind.in_(kinds))
        with self.engine.connect() as conn:
            return [_answer(r) for r in conn.execute(q)]
