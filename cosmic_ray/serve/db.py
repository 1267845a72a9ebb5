"""The event store's database: the engine, the ORM tables, the store's errors and its clock.

One engine serves both halves of the store (:mod:`cosmic_ray.serve.events` and
:mod:`cosmic_ray.serve.accounts`). SQLite by default (``Settings().event_store_url``), PostgreSQL
by URL (``postgresql://...``; the psycopg driver is used when installed). Nothing happens at
import; :func:`open_engine` creates the tables.

Example:
    >>> engine = open_engine("sqlite:///:memory:")
    >>> sorted(Base.metadata.tables)[:2]
    ['api_tokens', 'classifications']
"""

from __future__ import annotations

import importlib.util
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cosmic_ray.core.errors import CosmicRayError

log = logging.getLogger(__name__)


class StoreError(CosmicRayError):
    """A request the event store cannot honour (unknown user, duplicate class, weak password...)."""


class ConflictError(StoreError):
    """The thing already exists."""


class NotFoundError(StoreError):
    """The thing does not exist."""


def utcnow() -> datetime:
    """Naive UTC (what every column holds: SQLite keeps no time zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(when: datetime) -> datetime:
    """Stored times are naive UTC: an aware time is converted, a naive one taken as UTC."""
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo is not None else when


# ------------------------------------------------------------------------------------ tables
class Base(DeclarativeBase):
    pass


class Classification(Base):
    __tablename__ = "classifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    candid: Mapped[int] = mapped_column(BigInteger, unique=True, nullable=False)  # one row per alert
    object_id: Mapped[str] = mapped_column(String(128), index=True)
    classified_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    label: Mapped[str] = mapped_column(String(64), index=True)
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)
    open_set_score: Mapped[float] = mapped_column(Float)
    novel: Mapped[bool] = mapped_column(Boolean)
    rare: Mapped[bool] = mapped_column(Boolean, index=True)
    model_version: Mapped[str] = mapped_column(String(32))


class RegisteredClass(Base):
    __tablename__ = "registered_classes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # [{"object_id": str, "points": [{"mjd", "band", "mag", "magerr"}, ...]}, ...]: the light
    # curves themselves, so prototypes can be recomputed by any later encoder.
    support: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class StoreMeta(Base):
    __tablename__ = "store_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class User(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # NULL: a token made before tokens had a lifetime, refused as expired (create a new one)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Session(Base):
    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class LoginBucket(Base):
    """A leaky bucket of login attempts per key (``account:<name>``, ``address:<ip>``), shared by every replica."""

    __tablename__ = "login_buckets"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    level: Mapped[float] = mapped_column(Float)  # attempts still in the bucket at updated_at
    updated_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class ExpertLabel(Base):
    """An expert's answer about one object (:mod:`cosmic_ray.serve.labels`): who said what, and when."""

    __tablename__ = "expert_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    object_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)  # class | interesting | bogus
    class_name: Mapped[str | None] = mapped_column(String(64), nullable=True)  # kind=class only
    note: Mapped[str] = mapped_column(Text, default="")
    username: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)


#: Columns added after a table first shipped: ``open_engine`` adds them to an older store (all nullable).
_ADDED_COLUMNS: tuple[tuple[str, str], ...] = (("api_tokens", "expires_at"),)


# ------------------------------------------------------------------------------------ engine
def engine_url(url: str) -> str:
    """``postgresql://`` -> the psycopg (3) driver when it is installed and psycopg2 is not."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
            return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """Many processes share the file: WAL, and wait on locks rather than fail."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (SQLite: its folder created, WAL, a 30 s lock wait); no tables yet."""
    url = engine_url(url)
    if url.startswith("sqlite"):
        if url not in ("sqlite://", "sqlite:///:memory:"):
            Path(url.split("sqlite:///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def open_engine(url: str) -> Engine:
    """An engine for ``url`` with every table of the store created (idempotent)."""
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    _add_missing_columns(engine)
    return engine


def _add_missing_columns(engine: Engine) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for each column of ``_ADDED_COLUMNS`` that a store made earlier lacks."""
    inspector = inspect(engine)
    for table_name, column_name in _ADDED_COLUMNS:
        if column_name in {c["name"] for c in inspector.get_columns(table_name)}:
            continue
        column = Base.metadata.tables[table_name].columns[column_name]
        kind = column.type.compile(dialect=engine.dialect)
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table_name} ADD COLUMN {column_name} {kind}"))
        log.info("event store: added column %s.%s", table_name, column_name)
