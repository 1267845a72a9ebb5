"""The event store: classified alerts, classes registered at runtime, users, API tokens, sessions.

One small interface, :class:`EventStore`, over SQLAlchemy 2. SQLite by default
(``Settings().event_store_url``), PostgreSQL by URL (``postgresql://...``; the psycopg driver is
used when installed). Nothing happens at import; the tables are created when a store is opened.

Example:
    >>> store = EventStore("sqlite:///:memory:")
    >>> store.add_user("vera", "a long passphrase", role="astronomer").role
    'astronomer'
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cosmic_ray.core.errors import CosmicRayError

log = logging.getLogger(__name__)

ROLES = ("viewer", "astronomer", "admin")
WRITER_ROLES = ("astronomer", "admin")
MIN_PASSWORD_LENGTH = 10
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_CLASS_NAME = re.compile(r"^[A-Za-z0-9 _./()+-]{1,64}$")


class StoreError(CosmicRayError):
    """A request the event store cannot honour (unknown user, duplicate class, weak password...)."""


class ConflictError(StoreError):
    """The thing already exists."""


class NotFoundError(StoreError):
    """The thing does not exist."""


def utcnow() -> datetime:
    """Naive UTC (what every column holds: SQLite keeps no time zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _hash_secret(secret: str) -> str:
    # Tokens and session ids are 256-bit random values: a fast hash is enough (no dictionary to try).
    return hashlib.sha256(secret.encode()).hexdigest()


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


class Session(Base):
    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


# ------------------------------------------------------------------------------------ values
@dataclass(frozen=True)
class Principal:
    """Who is calling: a user and how they proved it (``password``, ``token``, ``session``)."""

    username: str
    role: str
    via: str

    @property
    def can_write(self) -> bool:
        return self.role in WRITER_ROLES


@dataclass(frozen=True)
class ClassRecord:
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


@dataclass(frozen=True)
class TokenInfo:
    id: int
    username: str
    name: str
    token: str  # the plain token: shown once, never stored


def _naive_utc(when: datetime) -> datetime:
    """Stored times are naive UTC: an aware time is converted, a naive one taken as UTC."""
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo is not None else when


def _alert_record(r) -> dict[str, Any]:
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


def _engine_url(url: str) -> str:
    """``postgresql://`` -> the psycopg (3) driver when it is installed and psycopg2 is not."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
            return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


# ------------------------------------------------------------------------------------ store
class EventStore:
    """The event store behind one small interface. Safe to share across threads.

    Args:
        url: SQLAlchemy URL (``sqlite:///path`` or ``postgresql://user:pw@host/db``).
    """

    _CLASSES_VERSION = "classes_version"

    def __init__(self, url: str):
        self.url = url
        self.engine: Engine = self._make_engine(url)
        Base.metadata.create_all(self.engine)
        self._hasher = None

    @staticmethod
    def _make_engine(url: str) -> Engine:
        url = _engine_url(url)
        if url.startswith("sqlite"):
            if url not in ("sqlite://", "sqlite:///:memory:"):
                from pathlib import Path

                Path(url.split("sqlite:///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn, _record) -> None:  # many processes share the file: WAL + wait on locks
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            return engine
        return create_engine(url, pool_pre_ping=True)

    def close(self) -> None:
        self.engine.dispose()

    # --------------------------------------------------------------- classifications
    def record_classifications(self, rows: Iterable[Mapping[str, Any]]) -> list[int]:
        """Store classifications exactly once per alert ``candid``; returns the candids that were new.

        Each row: ``candid, object_id, class, probabilities, open_set_score, novel, rare, model_version``.
        """
        now = utcnow()
        values = [
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
        values = [v for v in values if not (v["candid"] in seen or seen.add(v["candid"]))]
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:  # pragma: no cover - other databases: check first, then insert
            return self._record_portable(values)
        new: list[int] = []
        with self.engine.begin() as conn:
            for start in range(0, len(values), 500):
                stmt = (
                    insert(Classification)
                    .values(values[start : start + 500])
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
                conn.execute(Classification.__table__.insert(), fresh)
        return [v["candid"] for v in fresh]

    def known_candids(self, candids: Iterable[int]) -> set[int]:
        """The candids among ``candids`` that already have a stored classification."""
        candids = [int(c) for c in candids]
        found: set[int] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(candids), 900):
                part = candids[start : start + 900]
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
            stmt = stmt.where(Classification.classified_at >= _naive_utc(since))
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
            stmt = stmt.where(Classification.classified_at >= _naive_utc(since))
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for r in conn.execution_options(stream_results=True, yield_per=256).execute(stmt):
                if r.object_id not in out:
                    out[r.object_id] = _alert_record(r)
                    if len(out) >= limit:
                        break
        return list(out.values())

    def count_classifications(self, rare: bool | None = None) -> int:
        stmt = select(func.count()).select_from(Classification)
        if rare is not None:
            stmt = stmt.where(Classification.rare == rare)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    # --------------------------------------------------------------- classes
    def _bump_classes_version(self, conn) -> None:
        current = conn.execute(
            select(StoreMeta.value).where(StoreMeta.key == self._CLASSES_VERSION)
        ).scalar_one_or_none()
        if current is None:
            conn.execute(StoreMeta.__table__.insert().values(key=self._CLASSES_VERSION, value=1))
        else:
            conn.execute(update(StoreMeta).where(StoreMeta.key == self._CLASSES_VERSION).values(value=current + 1))

    def classes_version(self) -> int:
        """A number that changes whenever a class is added or removed (replicas poll it)."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(StoreMeta.value).where(StoreMeta.key == self._CLASSES_VERSION)
            ).scalar_one_or_none()
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
                RegisteredClass.__table__.insert().values(
                    name=name, support=record.support, created_by=created_by, created_at=record.created_at
                )
            )
            self._bump_classes_version(conn)
        log.info("class %r registered by %s with %d support objects", name, created_by, len(support))
        return record

    def remove_class(self, name: str) -> None:
        """Raises: NotFoundError: no such registered class."""
        with self.engine.begin() as conn:
            if conn.execute(delete(RegisteredClass).where(RegisteredClass.name == name)).rowcount == 0:
                raise NotFoundError(f"no registered class {name!r}")
            self._bump_classes_version(conn)
        log.info("class %r removed", name)

    def list_classes(self) -> list[ClassRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(RegisteredClass).order_by(RegisteredClass.id)).all()
        return [ClassRecord(r.name, r.support, r.created_by, r.created_at) for r in rows]

    def classes_snapshot(self) -> tuple[int, list[ClassRecord]]:
        """The classes version and the classes, read in one transaction."""
        with self.engine.connect() as conn, conn.begin():
            value = conn.execute(
                select(StoreMeta.value).where(StoreMeta.key == self._CLASSES_VERSION)
            ).scalar_one_or_none()
            rows = conn.execute(select(RegisteredClass).order_by(RegisteredClass.id)).all()
        return int(value or 0), [ClassRecord(r.name, r.support, r.created_by, r.created_at) for r in rows]

    # --------------------------------------------------------------- users
    @property
    def hasher(self):
        if self._hasher is None:
            from argon2 import PasswordHasher

            self._hasher = PasswordHasher()
        return self._hasher

    def _check_password(self, password: str) -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise StoreError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")

    def add_user(self, username: str, password: str, role: str = "viewer") -> Principal:
        """Raises: ConflictError: the user exists. StoreError: bad name, role or weak password."""
        if not _USERNAME.match(username):
            raise StoreError(f"bad username {username!r}: 1-64 letters, digits and _.@-")
        if role not in ROLES:
            raise StoreError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        self._check_password(password)
        now = utcnow()
        digest = self.hasher.hash(password)
        with self.engine.begin() as conn:
            if conn.execute(select(User.username).where(User.username == username)).first() is not None:
                raise ConflictError(f"user {username!r} already exists")
            conn.execute(
                User.__table__.insert().values(
                    username=username, role=role, password_hash=digest, created_at=now, updated_at=now
                )
            )
        log.info("user %s added with role %s", username, role)
        return Principal(username, role, "password")

    def set_password(self, username: str, password: str) -> None:
        """Change a password; ends the user's sessions. Raises: NotFoundError, StoreError."""
        self._check_password(password)
        digest = self.hasher.hash(password)
        with self.engine.begin() as conn:
            if (
                conn.execute(
                    update(User).where(User.username == username).values(password_hash=digest, updated_at=utcnow())
                ).rowcount
                == 0
            ):
                raise NotFoundError(f"no user {username!r}")
            conn.execute(delete(Session).where(Session.username == username))
        log.info("password of %s changed", username)

    def set_role(self, username: str, role: str) -> None:
        if role not in ROLES:
            raise StoreError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        with self.engine.begin() as conn:
            if (
                conn.execute(
                    update(User).where(User.username == username).values(role=role, updated_at=utcnow())
                ).rowcount
                == 0
            ):
                raise NotFoundError(f"no user {username!r}")

    def remove_user(self, username: str) -> None:
        """Remove a user with their tokens and sessions. Raises: NotFoundError."""
        with self.engine.begin() as conn:
            conn.execute(delete(ApiToken).where(ApiToken.username == username))
            conn.execute(delete(Session).where(Session.username == username))
            if conn.execute(delete(User).where(User.username == username)).rowcount == 0:
                raise NotFoundError(f"no user {username!r}")
        log.info("user %s removed", username)

    def get_user(self, username: str) -> Principal | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(User.username, User.role).where(User.username == username)).first()
        return Principal(row.username, row.role, "lookup") if row else None

    def list_users(self) -> list[Principal]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(User.username, User.role).order_by(User.username)).all()
        return [Principal(r.username, r.role, "lookup") for r in rows]

    def authenticate(self, username: str, password: str) -> Principal | None:
        """The user if the password matches, else None (same work whether or not the user exists)."""
        from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

        with self.engine.connect() as conn:
            row = conn.execute(
                select(User.username, User.role, User.password_hash).where(User.username == username)
            ).first()
        digest = row.password_hash if row else self._dummy_hash()
        try:
            self.hasher.verify(digest, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if self.hasher.check_needs_rehash(digest):
            with self.engine.begin() as conn:
                conn.execute(
                    update(User).where(User.username == username).values(password_hash=self.hasher.hash(password))
                )
        return Principal(row.username, row.role, "password")

    def _dummy_hash(self) -> str:
        if not hasattr(self, "_dummy"):
            self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        return self._dummy

    # --------------------------------------------------------------- API tokens
    def create_token(self, username: str, name: str = "") -> TokenInfo:
        """A new API token for ``username``; the plain token is in the result only. Raises: NotFoundError."""
        token = "crt_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            if conn.execute(select(User.username).where(User.username == username)).first() is None:
                raise NotFoundError(f"no user {username!r}")
            result = conn.execute(
                ApiToken.__table__.insert().values(
                    token_hash=_hash_secret(token), username=username, name=name, created_at=utcnow()
                )
            )
            token_id = int(result.inserted_primary_key[0])
        log.info("token %d created for %s", token_id, username)
        return TokenInfo(token_id, username, name, token)

    def revoke_token(self, token_id: int) -> None:
        """Raises: NotFoundError: no live token with that id."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(ApiToken)
                .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            ).rowcount
        if not done:
            raise NotFoundError(f"no live token with id {token_id}")
        log.info("token %d revoked", token_id)

    def list_tokens(self, username: str | None = None) -> list[dict[str, Any]]:
        stmt = select(ApiToken.id, ApiToken.username, ApiToken.name, ApiToken.created_at, ApiToken.revoked_at).order_by(
            ApiToken.id
        )
        if username:
            stmt = stmt.where(ApiToken.username == username)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def principal_for_token(self, token: str) -> Principal | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(User.username, User.role)
                .join(ApiToken, ApiToken.username == User.username)
                .where(ApiToken.token_hash == _hash_secret(token), ApiToken.revoked_at.is_(None))
            ).first()
        return Principal(row.username, row.role, "token") if row else None

    # --------------------------------------------------------------- sessions
    def create_session(self, username: str, ttl: timedelta) -> tuple[str, datetime]:
        """A new session id (plain, for the cookie) and its expiry; only its hash is stored."""
        session_id = secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + ttl
        with self.engine.begin() as conn:
            conn.execute(delete(Session).where(Session.expires_at < now))
            conn.execute(
                Session.__table__.insert().values(
                    id_hash=_hash_secret(session_id), username=username, created_at=now, expires_at=expires
                )
            )
        return session_id, expires

    def principal_for_session(self, session_id: str) -> Principal | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(User.username, User.role)
                .join(Session, Session.username == User.username)
                .where(Session.id_hash == _hash_secret(session_id), Session.expires_at > utcnow())
            ).first()
        return Principal(row.username, row.role, "session") if row else None

    def delete_session(self, session_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(Session).where(Session.id_hash == _hash_secret(session_id)))
