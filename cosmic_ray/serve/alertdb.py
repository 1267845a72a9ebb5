"""The event store's tables for watchlists, subscriptions and the webhook outbox (issue 20).

They live on the store's one :class:`~cosmic_ray.serve.db.Base`, so ``open_engine`` creates them
with the rest; :func:`ensure_tables` creates them on an engine opened before this module was
imported (idempotent, once per engine).

- ``watchlists``: a user's named list; ``watchlist_entries``: its positions with radii;
  ``watchlist_pixels``: the HEALPix cells (nested, order :data:`PIXEL_ORDER`) each entry's disc
  touches, indexed, so matching an alert is one look-up of its cell then an exact distance check;
  ``watchlist_regions``: sky regions as MOCs (ASCII serialisation of ``mocpy``).
- ``watchlist_matches``: an alert that fell in a watchlist, once per (watchlist, candid, entry).
- ``subscriptions``: who is told what, and where (the webhook URL encrypted, :mod:`cosmic_ray.serve.secretbox`).
- ``outbox``: one row per (subscription, item): pending until a 2xx, then delivered, never re-sent.
"""

from __future__ import annotations

import threading
import weakref
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from cosmic_ray.serve.db import Base

#: HEALPix order of the watchlist index (nside 1024, cells ~3.4 arcmin across).
PIXEL_ORDER = 10


class Watchlist(Base):
    __tablename__ = "watchlists"
    __table_args__ = (UniqueConstraint("owner", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class WatchlistEntry(Base):
    __tablename__ = "watchlist_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    watchlist_id: Mapped[int] = mapped_column(ForeignKey("watchlists.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    ra: Mapped[float] = mapped_column(Float)
    dec: Mapped[float] = mapped_column(Float)
    radius_arcsec: Mapped[float] = mapped_column(Float)


class WatchlistPixel(Base):
    __tablename__ = "watchlist_pixels"

    pixel: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("watchlist_entries.id", ondelete="CASCADE"), primary_key=True)


class WatchlistRegion(Base):
    __tablename__ = "watchlist_regions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    watchlist_id: Mapped[int] = mapped_column(ForeignKey("watchlists.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    moc: Mapped[str] = mapped_column(Text)  # mocpy ASCII serialisation
    sky_fraction: Mapped[float] = mapped_column(Float)


class WatchlistMatch(Base):
    __tablename__ = "watchlist_matches"
    __table_args__ = (UniqueConstraint("watchlist_id", "candid", "target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    watchlist_id: Mapped[int] = mapped_column(ForeignKey("watchlists.id", ondelete="CASCADE"), index=True)
    candid: Mapped[int] = mapped_column(BigInteger, index=True)
    object_id: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(160))  # "entry:<name>" or "region:<name>"
    ra: Mapped[float] = mapped_column(Float)
    dec: Mapped[float] = mapped_column(Float)
    separation_arcsec: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: a region
    matched_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)  # class | novel | watchlist | rare | digest
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    url_encrypted: Mapped[str] = mapped_column(Text)
    url_shown: Mapped[str] = mapped_column(String(300))  # the masked form (scheme://host/…)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class OutboxItem(Base):
    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("subscription_id", "item_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True)
    item_key: Mapped[str] = mapped_column(String(64))  # the candid, or digest-<night>
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


TABLES = [
    t.__table__
    for t in (
        Watchlist,
        WatchlistEntry,
        WatchlistPixel,
        WatchlistRegion,
        WatchlistMatch,
        Subscription,
        OutboxItem,
    )
]

_READY: weakref.WeakSet[Engine] = weakref.WeakSet()
_LOCK = threading.Lock()


def ensure_tables(engine: Engine) -> None:
    """Create this module's tables on ``engine`` if they are missing (once per engine)."""
    with _LOCK:
        if engine in _READY:
            return
        Base.metadata.create_all(engine, tables=TABLES)  # type: ignore[arg-type]  # Table objects
        _READY.add(engine)
