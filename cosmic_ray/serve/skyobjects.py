"""The object table of the event store: one row per object, with its position, HEALPix index,
detections, latest class and context; cone searches over it.

Ingest fills positions and counts (:func:`refresh_from_lake`, from :mod:`cosmic_ray.ingest.objects`);
the live path fills the class fields (:meth:`ObjectTable.record_classes`), newest classification
wins. The table lives in the event store (SQLite by default, PostgreSQL on Kubernetes) and is
created with the others by :func:`cosmic_ray.serve.db.open_engine` once this module is imported
(:mod:`cosmic_ray.serve.store` imports it).

Example:
    >>> from cosmic_ray.serve.store import Store
    >>> objects = ObjectTable(Store.open("sqlite:///:memory:").engine)
    >>> objects.cone(10.0, 20.0, 0.01).total
    0
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Integer, String, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from cosmic_ray.core.sky import angular_distance_deg, cone_ranges, healpix_index
from cosmic_ray.ingest.objects import ObjectSummary, lake_summaries
from cosmic_ray.serve.db import Base, naive_utc, open_engine, utcnow

log = logging.getLogger(__name__)

_CHUNK = 500  # rows per upsert statement


class SkyObject(Base):
    """One object: where it is, what it is, when it was seen."""

    __tablename__ = "sky_objects"

    object_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    ra: Mapped[float | None] = mapped_column(Float, nullable=True)  # degrees ICRS, mean of detections
    dec: Mapped[float | None] = mapped_column(Float, nullable=True)
    healpix: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)  # nested, order 29
    n_points: Mapped[int] = mapped_column(Integer, default=0)
    n_detections: Mapped[int] = mapped_column(Integer, default=0)
    first_mjd: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_mjd: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    sources: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    label: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # latest class
    probability: Mapped[float | None] = mapped_column(Float, nullable=True)  # of the latest class
    probabilities: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    open_set_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    rare: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    novel: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    classified_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    candid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the alert of the latest class
    gal_b: Mapped[float | None] = mapped_column(Float, nullable=True)
    host_mag: Mapped[float | None] = mapped_column(Float, nullable=True)
    host_color: Mapped[float | None] = mapped_column(Float, nullable=True)
    redshift: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


_POSITION_FIELDS = (
    "ra",
    "dec",
    "healpix",
    "n_points",
    "n_detections",
    "first_mjd",
    "last_mjd",
    "sources",
    "gal_b",
    "host_mag",
    "host_color",
    "redshift",
    "updated_at",
)
_CLASS_FIELDS = (
    "label",
    "probability",
    "probabilities",
    "open_set_score",
    "rare",
    "novel",
    "model_version",
    "classified_at",
    "candid",
    "updated_at",
)


@dataclass(frozen=True)
class ObjectFilters:
    """What a listing or cone search keeps besides position (None: no condition)."""

    label: str | None = None
    min_probability: float | None = None  # of the latest class
    min_open_set: float | None = None
    max_open_set: float | None = None
    last_after: float | None = None  # MJD of the last detection, inclusive
    last_before: float | None = None
    rare: bool | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        c = SkyObject
        out: list[ColumnElement[bool]] = []
        if self.label is not None:
            out.append(c.label == self.label)
        if self.min_probability is not None:
            out.append(c.probability >= self.min_probability)
        if self.min_open_set is not None:
            out.append(c.open_set_score >= self.min_open_set)
        if self.max_open_set is not None:
            out.append(c.open_set_score <= self.max_open_set)
        if self.last_after is not None:
            out.append(c.last_mjd >= self.last_after)
        if self.last_before is not None:
            out.append(c.last_mjd <= self.last_before)
        if self.rare is not None:
            out.append(c.rare == self.rare)
        return out


@dataclass(frozen=True)
class ObjectPage:
    """One page of a listing or cone search: ``total`` matches, ``objects`` from ``offset`` on."""

    total: int
    offset: int
    limit: int
    objects: list[dict[str, Any]] = field(default_factory=list)


def object_record(r: Any, distance_deg: float | None = None) -> dict[str, Any]:
    """A stored row as the API shows it (``class`` for the label; ``distance_arcsec`` in a cone)."""
    out = {
        "object_id": r.object_id,
        "ra": r.ra,
        "dec": r.dec,
        "healpix": r.healpix,
        "n_points": r.n_points,
        "n_detections": r.n_detections,
        "first_mjd": r.first_mjd,
        "last_mjd": r.last_mjd,
        "sources": list(r.sources or []),
        "class": r.label,
        "probability": r.probability,
        "probabilities": r.probabilities,
        "open_set_score": r.open_set_score,
        "rare": r.rare,
        "novel": r.novel,
        "model_version": r.model_version,
        "classified_at": r.classified_at.isoformat() + "Z" if r.classified_at else None,
        "gal_b": r.gal_b,
        "host_mag": r.host_mag,
        "host_color": r.host_color,
        "redshift": r.redshift,
    }
    if distance_deg is not None:
        out["distance_arcsec"] = distance_deg * 3600.0
    return out


class ObjectTable:
    """The object table over the store's engine (tables made by ``open_engine``). Thread-safe.

    Args:
        engine: the event store's engine.
    """

    def __init__(self, engine: Engine):
        self.engine = engine

    def _upsert(self, values: list[dict[str, Any]], update: tuple[str, ...]) -> None:
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            make = postgresql.insert
        elif dialect == "sqlite":
            make = sqlite.insert  # type: ignore[assignment]  # same interface, other dialect
        else:  # pragma: no cover - other databases are not supported by the store
            raise NotImplementedError(f"object table upserts on {dialect}")
        with self.engine.begin() as conn:
            for start in range(0, len(values), _CHUNK):
                stmt = make(SkyObject).values(values[start : start + _CHUNK])
                stmt = stmt.on_conflict_do_update(
                    index_elements=["object_id"], set_={k: stmt.excluded[k] for k in update}
                )
                conn.execute(stmt)

    # ------------------------------------------------------------------ writes
    def upsert_summaries(self, summaries: Iterable[ObjectSummary]) -> int:
        """Store (or replace) the lake-derived fields of each object; class fields are kept. Returns rows written."""
        rows = list(summaries)
        if not rows:
            return 0
        hpx: dict[int, int] = {}
        placed = [i for i, s in enumerate(rows) if s.ra is not None and s.dec is not None]
        if placed:
            idx = healpix_index(np.array([rows[i].ra for i in placed]), np.array([rows[i].dec for i in placed]))
            hpx = dict(zip(placed, idx.tolist(), strict=True))
        now = utcnow()
        values = [
            {
                "object_id": s.object_id,
                "ra": s.ra,
                "dec": s.dec,
                "healpix": hpx.get(i),
                "n_points": s.n_points,
                "n_detections": s.n_detections,
                "first_mjd": s.first_mjd,
                "last_mjd": s.last_mjd,
                "sources": list(s.sources),
                "gal_b": s.gal_b,
                "host_mag": s.host_mag,
                "host_color": s.host_color,
                "redshift": s.redshift,
                "updated_at": now,
            }
            for i, s in enumerate(rows)
        ]
        self._upsert(values, _POSITION_FIELDS)
        return len(values)

    def record_classes(self, classifications: Iterable[Mapping[str, Any]]) -> int:
        """The live path's classifications -> each object's class fields (the newest per object wins).

        Each row as :meth:`cosmic_ray.serve.events.Events.record_classifications` takes it; newest is
        the latest ``classified_at``, then the highest ``candid`` (ZTF candids grow with time). An
        object not yet in the table gets a row without position (ingest fills it). Returns objects updated.
        """
        latest: dict[str, dict[str, Any]] = {}
        now = utcnow()  # one time for a batch (as the events get): the alert's candid then decides
        for r in classifications:
            oid = str(r["object_id"])
            when = naive_utc(r["classified_at"]) if r.get("classified_at") else now
            candid = int(r["candid"]) if r.get("candid") is not None else None
            key = (when, candid or 0)
            if oid in latest and latest[oid]["_key"] > key:
                continue
            probs = {k: float(v) for k, v in r["probabilities"].items()}
            latest[oid] = {
                "_key": key,
                "object_id": oid,
                "label": str(r["class"]),
                "probability": probs.get(str(r["class"])),
                "probabilities": probs,
                "open_set_score": float(r["open_set_score"]),
                "rare": bool(r["rare"]),
                "novel": bool(r.get("novel", False)),
                "model_version": str(r.get("model_version", "")),
                "classified_at": when,
                "candid": candid,
                "n_points": 0,
                "n_detections": 0,
                "updated_at": now,
            }
        if not latest:
            return 0
        with self.engine.connect() as conn:
            stored = dict(
                conn.execute(
                    select(SkyObject.object_id, SkyObject.classified_at).where(SkyObject.object_id.in_(list(latest)))
                ).all()
            )
        values = []
        for oid, v in latest.items():
            v.pop("_key")
            before = stored.get(oid)
            if before is not None and before > v["classified_at"]:
                continue  # a newer classification is stored already
            values.append(v)
        if values:
            self._upsert(values, _CLASS_FIELDS)
        return len(values)

    # ------------------------------------------------------------------ reads
    def get(self, object_id: str) -> dict[str, Any] | None:
        """The object's row, or None."""
        with self.engine.connect() as conn:
            r = conn.execute(select(SkyObject).where(SkyObject.object_id == object_id)).first()
        return None if r is None else object_record(r)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(SkyObject)).scalar_one())

    def cone(
        self,
        ra: float,
        dec: float,
        radius_deg: float,
        filters: ObjectFilters | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> ObjectPage:
        """Objects within ``radius_deg`` of ``(ra, dec)``, nearest first (then by id), one page of them."""
        ranges = cone_ranges(ra, dec, radius_deg)
        stmt = select(SkyObject).where(or_(*(SkyObject.healpix.between(lo, hi) for lo, hi in ranges)))
        for clause in (filters or ObjectFilters()).clauses():
            stmt = stmt.where(clause)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        if not rows:
            return ObjectPage(0, offset, limit, [])
        dist = angular_distance_deg(ra, dec, np.array([r.ra for r in rows]), np.array([r.dec for r in rows]))
        inside = sorted(
            ((float(d), r.object_id, r) for d, r in zip(dist.tolist(), rows, strict=True) if d <= radius_deg),
            key=lambda t: (t[0], t[1]),
        )
        page = [object_record(r, d) for d, _, r in inside[offset : offset + limit]]
        return ObjectPage(len(inside), offset, limit, page)

    def listing(self, filters: ObjectFilters | None = None, limit: int = 100, offset: int = 0) -> ObjectPage:
        """Objects by last detection, newest first (those never detected last), one page of them."""
        clauses = (filters or ObjectFilters()).clauses()
        stmt = select(SkyObject)
        count = select(func.count()).select_from(SkyObject)
        for clause in clauses:
            stmt, count = stmt.where(clause), count.where(clause)
        stmt = stmt.order_by(SkyObject.last_mjd.desc().nulls_last(), SkyObject.object_id).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            total = int(conn.execute(count).scalar_one())
            rows = conn.execute(stmt).all()
        return ObjectPage(total, offset, limit, [object_record(r) for r in rows])

    def search_ids(self, text: str, limit: int = 20) -> list[dict[str, Any]]:
        """Objects whose id starts with ``text`` (case-insensitive), by id."""
        pattern = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = (
            select(SkyObject)
            .where(func.lower(SkyObject.object_id).like(pattern.lower(), escape="\\"))
            .order_by(SkyObject.object_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [object_record(r) for r in conn.execute(stmt).all()]


def refresh_from_lake(lake_dir: Path | str, store_url: str, object_ids: Iterable[str] | None = None) -> int:
    """Recompute the object table's rows of ``object_ids`` (all objects when None) from the lake.

    Idempotent: a rerun writes the same rows. Returns how many objects were written.
    """
    summaries = lake_summaries(lake_dir, object_ids)
    engine = open_engine(store_url)
    try:
        written = ObjectTable(engine).upsert_summaries(summaries)
    finally:
        engine.dispose()
    log.info("object table: %d objects refreshed from %s", written, lake_dir)
    return written
