"""The event store's events: classified alerts, exactly once per ``candid``, and the classes
registered at runtime with the version number replicas poll.

Example:
    >>> from cosmic_ray.serve.db import open_engine
    >>> events = Events(open_engine("sqlite:///:memory:"))
    >>> events.classes_version()
    0
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from cosmic_ray.serve.db import (
    Classification,
    ConflictError,
    NotFoundError,
    RegisteredClass,
    StoreError,
    StoreMeta,
    naive_utc,
    utcnow,
)

log = logging.getLogger(__name__)

_CLASS_NAME = re.compile(r"^[A-Za-z0-9 _./()+-]{1,64}$")
_CLASSES_VERSION = "classes_version"


@dataclass(frozen=True)
class ClassRecord:
    """A class registered at runtime, with its support light curves."""

    name: str
    support: list[dict[str, Any]]
    created_by: str
    created_at: datetime

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "support_objects": [s["object_id"] for s in self.support],
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat() + "Z",
        }


def _alert_record(r: Row[Any]) -> dict[str, Any]:
    return {
        "candid": r.candid,
        "object_id": r.object_id,
        "classified_at": r.classified_at.isoformat() + "Z",
        "class": r.label,
        "probabilities": r.probabilities,
        "open_set_score": r.open_set_score,
        "novel": r.novel,
        "rare": r.rare,
        "model_version": r.model_version,
    }


def _class_record(r: Row[Any]) -> ClassRecord:
    return ClassRecord(r.name, r.support, r.created_by, r.created_at)


class Events:
    """Classifications and registered classes over one engine. Safe to share across threads.

    Args:
        engine: the store's engine (:func:`cosmic_ray.serve.db.open_engine`: tables created).
    """

    def __init__(self, engine: Engine):
        self.engine = engine

    # --------------------------------------------------------------- classifications
    def record_classifications(self, rows: Iterable[Mapping[str, Any]]) -> list[int]:
        """Store classifications exactly once per alert ``candid``; returns the candids that were new.

        Each row: ``candid, object_id, class, probabilities, open_set_score, novel, rare, model_version``.
        """
        now = utcnow()
        values: list[dict[str, Any]] = [
            {
                "candid": int(r["candid"]),
                "object_id": str(r["object_id"]),
                "classified_at": r.get("classified_at") or now,
                "label": str(r["class"]),
                "probabilities": {k: float(v) for k, v in r["probabilities"].items()},
                "open_set_score": float(r["open_set_score"]),
                "novel": bool(r["novel"]),
                "rare": bool(r["rare"]),
                "model_version": str(r["model_version"]),
            }
            for r in rows
        ]
        if not values:
            return []
        seen: set[int] = set()
        unique = []
        for v in values:
            if v["candid"] not in seen:
                seen.add(v["candid"])
                unique.append(v)
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            upsert = sqlite.insert
        elif dialect == "postgresql":
            upsert = postgresql.insert  # type: ignore[assignment]  # same interface, other dialect
        else:  # pragma: no cover - other databases: check first, then insert
            return self._record_portable(unique)
        new: list[int] = []
        with self.engine.begin() as conn:
            for start in range(0, len(unique), 500):
                stmt = (
                    upsert(Classification)
                    .values(unique[start : start + 500])
                    .on_conflict_do_nothing(index_elements=["candid"])
                    .returning(Classification.candid)
                )
                new.extend(int(c) for c in conn.execute(stmt).scalars())
        return new

    def _record_portable(self, values: list[dict[str, Any]]) -> list[int]:
        with self.engine.begin() as conn:
            existing = set(
                conn.execute(
                    select(Classification.candid).where(Classification.candid.in_([v["candid"] for v in values]))
                ).scalars()
            )
            fresh = [v for v in values if v["candid"] not in existing]
            if fresh:
                conn.execute(insert(Classification), fresh)
        return [v["candid"] for v in fresh]

    def known_candids(self, candids: Iterable[int]) -> set[int]:
        """The candids among ``candids`` that already have a stored classification."""
        wanted = [int(c) for c in candids]
        found: set[int] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 900):
                part = wanted[start : start + 900]
                found.update(
                    conn.execute(select(Classification.candid).where(Classification.candid.in_(part))).scalars()
                )
        return found

    def recent_alerts(
        self, label: str | None = None, rare: bool | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Latest stored classifications first, optionally of one class, rare or not, from a time on."""
        stmt = (
            select(Classification).order_by(Classification.classified_at.desc(), Classification.id.desc()).limit(limit)
        )
        if label is not None:
            stmt = stmt.where(Classification.label == label)
        if rare is not None:
            stmt = stmt.where(Classification.rare == rare)
        if since is not None:
            stmt = stmt.where(Classification.classified_at >= naive_utc(since))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [_alert_record(r) for r in rows]

    def top_candidates(self, label: str, since: datetime | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """A follow-up list: objects ranked by their probability of class ``label``, highest first,
        each object once (at its alert of highest probability), optionally from a time on. Alerts
        whose probabilities do not name the class (a model that did not know it) are not ranked."""
        prob = Classification.probabilities[label].as_float()
        stmt = (
            select(Classification)
            .where(prob.is_not(None))
            .order_by(prob.desc(), Classification.classified_at.desc(), Classification.id.desc())
        )
        if since is not None:
            stmt = stmt.where(Classification.classified_at >= naive_utc(since))
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for r in conn.execution_options(stream_results=True, yield_per=256).execute(stmt):
                if r.object_id not in out:
                    out[r.object_id] = _alert_record(r)
                    if len(out) >= limit:
                        break
        return list(out.values())

    def count_classifications(self, rare: bool | None = None) -> int:
        """How many alerts are stored (only rare or only not rare ones if ``rare`` is given)."""
        stmt = select(func.count()).select_from(Classification)
        if rare is not None:
            stmt = stmt.where(Classification.rare == rare)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    # --------------------------------------------------------------- classes
    @staticmethod
    def _bump_classes_version(conn: Connection) -> None:
        current = conn.execute(select(StoreMeta.value).where(StoreMeta.key == _CLASSES_VERSION)).scalar_one_or_none()
        if current is None:
            conn.execute(insert(StoreMeta).values(key=_CLASSES_VERSION, value=1))
        else:
            conn.execute(update(StoreMeta).where(StoreMeta.key == _CLASSES_VERSION).values(value=current + 1))

    def classes_version(self) -> int:
        """A number that changes whenever a class is added or removed (replicas poll it)."""
        with self.engine.connect() as conn:
            value = conn.execute(select(StoreMeta.value).where(StoreMeta.key == _CLASSES_VERSION)).scalar_one_or_none()
        return int(value or 0)

    def add_class(self, name: str, support: list[dict[str, Any]], created_by: str) -> ClassRecord:
        """Register a class from its support light curves.

        Raises:
            ConflictError: a class of that name is already registered.
            StoreError: a bad name or no support.
        """
        if not _CLASS_NAME.match(name):
            raise StoreError(f"bad class name {name!r}: 1-64 letters, digits, spaces and _./()+-")
        if not support:
            raise StoreError("a class needs at least one support light curve")
        record = ClassRecord(name=name, support=list(support), created_by=created_by, created_at=utcnow())
        with self.engine.begin() as conn:
            if conn.execute(select(RegisteredClass.id).where(RegisteredClass.name == name)).first() is not None:
                raise ConflictError(f"class {name!r} is already registered")
            conn.execute(
                insert(RegisteredClass).values(
                    name=name, support=record.support, created_by=created_by, created_at=record.created_at
                )
            )
            self._bump_classes_version(conn)
        log.info("class %r registered by %s with %d support objects", name, created_by, len(support))
        return record

    def remove_class(self, name: str) -> None:
        """Forget a registered class.

        Raises:
            NotFoundError: no such registered class.
        """
        with self.engine.begin() as conn:
            if conn.execute(delete(RegisteredClass).where(RegisteredClass.name == name)).rowcount == 0:
                raise NotFoundError(f"no registered class {name!r}")
            self._bump_classes_version(conn)
        log.info("class %r removed", name)

    def list_classes(self) -> list[ClassRecord]:
        """The registered classes, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(RegisteredClass).order_by(RegisteredClass.id)).all()
        return [_class_record(r) for r in rows]

    def classes_snapshot(self) -> tuple[int, list[ClassRecord]]:
        """The classes version and the classes, read in one transaction."""
        with self.engine.connect() as conn, conn.begin():
            value = conn.execute(select(StoreMeta.value).where(StoreMeta.key == _CLASSES_VERSION)).scalar_one_or_none()
            rows = conn.execute(select(RegisteredClass).order_by(RegisteredClass.id)).all()
        return int(value or 0), [_class_record(r) for r in rows]
