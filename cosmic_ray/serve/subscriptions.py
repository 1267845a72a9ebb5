"""Subscriptions (who is told what, at which webhook) and the outbox that delivers them at least once.

A subscription is one of:

- ``class``: a class at or above a probability (``{"label": "SLSN-I", "min_probability": 0.5}``);
- ``novel``: an open-set score at or above a threshold (``{"min_score": 0.9}``);
- ``watchlist``: every new match of one of the owner's watchlists (``{"watchlist_id": 3}``);
- ``digest``: the night's N most anomalous new objects (``{"top": 10}``; ``cosmic-ray notify digest``);
- ``rare``: every new rare event (the operator's ``COSMIC_RAY_RARE_WEBHOOK_URL``, owner ``_system``).

The live path only inserts outbox rows (:meth:`Outbox.enqueue`, one per subscription and alert,
a repeat ignored); :mod:`cosmic_ray.serve.delivery` drains them. The URL is stored encrypted
(:mod:`cosmic_ray.serve.secretbox`) beside its masked form, the only one ever shown or logged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from cosmic_ray.serve.alertdb import OutboxItem, Subscription, Watchlist, ensure_tables
from cosmic_ray.serve.db import NotFoundError, StoreError, utcnow
from cosmic_ray.serve.secretbox import SecretBox, mask_url
from cosmic_ray.serve.watchlists import Match

log = logging.getLogger(__name__)

KINDS = ("class", "novel", "watchlist", "digest", "rare")
SYSTEM_OWNER = "_system"
MAX_PER_USER = 50


@dataclass(frozen=True)
class SubscriptionRecord:
    """A subscription as shown: never the URL itself."""

    id: int
    owner: str
    kind: str
    params: dict[str, Any]
    url_shown: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "kind": self.kind,
            "params": self.params,
            "url": self.url_shown,
            "created_at": self.created_at.isoformat() + "Z",
        }


@dataclass(frozen=True)
class Due:
    """An outbox row claimed for one delivery attempt."""

    id: int
    subscription_id: int
    item_key: str
    payload: dict[str, Any]
    attempts: int
    url_encrypted: str

    @property
    def idempotency_key(self) -> str:
        return f"{self.subscription_id}:{self.item_key}"


def check_params(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The params a subscription of ``kind`` keeps. Raises: StoreError: a bad kind or params."""
    try:
        if kind == "class":
            label = str(params["label"])
            p = float(params.get("min_probability", 0.5))
            if not 1 <= len(label) <= 64 or not 0.0 <= p <= 1.0:
                raise ValueError("label must be 1-64 characters and min_probability in [0, 1]")
            return {"label": label, "min_probability": p}
        if kind == "novel":
            score = float(params.get("min_score", 0.0))
            if not math.isfinite(score):
                raise ValueError("min_score must be a finite number")
            return {"min_score": score}
        if kind == "watchlist":
            wl = int(params["watchlist_id"])
            if not 1 <= wl < 2**63:
                raise ValueError("watchlist_id out of range")
            return {"watchlist_id": wl}
        if kind == "digest":
            top = int(params.get("top", 10))
            if not 1 <= top <= 100:
                raise ValueError("top must be 1-100")
            return {"top": top}
        if kind == "rare":
            return {}
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"bad params for a {kind!r} subscription: {exc}") from None
    raise StoreError(f"unknown subscription kind {kind!r}: one of {', '.join(KINDS)}")


def _record(r: Any) -> SubscriptionRecord:
    return SubscriptionRecord(r.id, r.owner, r.kind, dict(r.params), r.url_shown, r.created_at)


class Subscriptions:
    """Subscriptions in the event store. Safe to share across threads.

    Args:
        engine: the store's engine (tables created if missing).
        box: encrypts the webhook URLs.
    """

    def __init__(self, engine: Engine, box: SecretBox):
        self.engine = engine
        self.box = box
        ensure_tables(engine)

    def create(self, owner: str, kind: str, params: Mapping[str, Any], url: str) -> SubscriptionRecord:
        """A new subscription (check the URL with :func:`cosmic_ray.serve.egress.resolve_target` first).

        Raises:
            StoreError: bad params, another user's watchlist, or too many subscriptions.
        """
        kept = check_params(kind, params)
        with self.engine.begin() as conn:
            if kind == "watchlist":
                wl_owner = conn.execute(
                    select(Watchlist.owner).where(Watchlist.id == kept["watchlist_id"])
                ).scalar_one_or_none()
                if wl_owner != owner:
                    raise NotFoundError(f"you have no watchlist {kept['watchlist_id']}")
            n = conn.execute(select(func.count()).select_from(Subscription).where(Subscription.owner == owner))
            if n.scalar_one() >= MAX_PER_USER:
                raise StoreError(f"at most {MAX_PER_USER} subscriptions per user")
            result = conn.execute(
                insert(Subscription).values(
                    owner=owner,
                    kind=kind,
                    params=kept,
                    url_encrypted=self.box.encrypt(url),
                    url_shown=mask_url(url),
                    created_at=utcnow(),
                )
            )
            assert result.inserted_primary_key is not None  # an INSERT has one
            sub_id = int(result.inserted_primary_key[0])
        log.info("subscription %d (%s) created by %s -> %s", sub_id, kind, owner, mask_url(url))
        return self.get(sub_id)

    def ensure_system_rare(self, url: str) -> int:
        """The ``_system`` ``rare`` subscription of the operator's rare webhook (made or re-pointed)."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(Subscription.id, Subscription.url_encrypted).where(
                    Subscription.owner == SYSTEM_OWNER, Subscription.kind == "rare"
                )
            ).all()
            for r in rows:
                if self.box.decrypt(r.url_encrypted) == url:
                    return int(r.id)
            if rows:  # the setting changed: the old target is no longer told
                conn.execute(delete(Subscription).where(Subscription.id.in_([r.id for r in rows])))
            result = conn.execute(
                insert(Subscription).values(
                    owner=SYSTEM_OWNER,
                    kind="rare",
                    params={},
                    url_encrypted=self.box.encrypt(url),
                    url_shown=mask_url(url),
                    created_at=utcnow(),
                )
            )
            assert result.inserted_primary_key is not None
            return int(result.inserted_primary_key[0])

    def get(self, sub_id: int) -> SubscriptionRecord:
        """Raises: NotFoundError."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Subscription).where(Subscription.id == sub_id)).first()
        if row is None:
            raise NotFoundError(f"no subscription {sub_id}")
        return _record(row)

    def list_for(self, owner: str | None = None, kind: str | None = None) -> list[SubscriptionRecord]:
        stmt = select(Subscription).order_by(Subscription.id)
        if owner is not None:
            stmt = stmt.where(Subscription.owner == owner)
        if kind is not None:
            stmt = stmt.where(Subscription.kind == kind)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(stmt).all()]

    def delete(self, sub_id: int) -> None:
        """Remove a subscription and its undelivered notifications. Raises: NotFoundError."""
        with self.engine.begin() as conn:
            conn.execute(delete(OutboxItem).where(OutboxItem.subscription_id == sub_id))
            if conn.execute(delete(Subscription).where(Subscription.id == sub_id)).rowcount == 0:
                raise NotFoundError(f"no subscription {sub_id}")

    # --------------------------------------------------------------- what the live path finds
    def notifications(
        self, classified: Sequence[Mapping[str, Any]], matches: Sequence[Match]
    ) -> list[tuple[int, str, dict[str, Any]]]:
        """``(subscription id, item key, payload)`` for each subscription a new alert or match satisfies."""
        subs = self.list_for()
        out: list[tuple[int, str, dict[str, Any]]] = []
        for s in subs:
            if s.kind == "watchlist":
                for m in matches:
                    if m.watchlist_id == s.params["watchlist_id"]:
                        out.append((s.id, str(m.candid), {"reason": f"watchlist {m.target}", **m.to_dict()}))
                continue
            for r in classified:
                reason = _reason(s, r)
                if reason:
                    out.append((s.id, str(r["candid"]), {"reason": reason, **_alert_payload(r)}))
        return out


def _reason(s: SubscriptionRecord, r: Mapping[str, Any]) -> str | None:
    if s.kind == "class":
        p = float(r["probabilities"].get(s.params["label"], 0.0))
        return f"{s.params['label']} p={p:.2f}" if p >= s.params["min_probability"] else None
    if s.kind == "novel":
        score = float(r["open_set_score"])
        return f"novel: open-set score {score:.2f}" if score >= s.params["min_score"] else None
    if s.kind == "rare":
        return f"rare: {r['class']}" if r.get("rare") else None
    return None


def _alert_payload(r: Mapping[str, Any]) -> dict[str, Any]:
    label = str(r["class"])
    return {
        "candid": int(r["candid"]),
        "object_id": str(r["object_id"]),
        "class": label,
        "probability": float(r["probabilities"].get(label, 0.0)),
        "open_set_score": float(r["open_set_score"]),
        "novel": bool(r.get("novel", False)),
        "rare": bool(r.get("rare", False)),
        "model_version": str(r.get("model_version", "")),
    }


class Outbox:
    """Notifications waiting for their webhook, kept until a 2xx (or ``max_attempts`` failures).

    Args:
        engine: the store's engine (tables created if missing).
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        ensure_tables(engine)

    def enqueue(self, items: Iterable[tuple[int, str, dict[str, Any]]]) -> int:
        """Insert ``(subscription id, item key, payload)`` rows, each pair once; returns how many were new."""
        now = utcnow()
        values = [
            {
                "subscription_id": sub,
                "item_key": key,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for sub, key, payload in items
        ]
        if not values:
            return 0
        upsert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        new = 0
        with self.engine.begin() as conn:
            for v in values:
                stmt = upsert(OutboxItem).values(**v)
                new += conn.execute(
                    stmt.on_conflict_do_nothing(index_elements=["subscription_id", "item_key"])
                ).rowcount
        return new

    def claim(self, limit: int = 50, lease: timedelta = timedelta(minutes=2)) -> list[Due]:
        """Pending rows whose time has come, leased to this caller (another deliverer skips them meanwhile)."""
        now = utcnow()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(OutboxItem.id)
                .where(
                    OutboxItem.status == "pending",
                    OutboxItem.next_attempt_at <= now,
                    or_(OutboxItem.lease_until.is_(None), OutboxItem.lease_until < now),
                )
                .order_by(OutboxItem.next_attempt_at, OutboxItem.id)
                .limit(limit)
            ).all()
        claimed: list[Due] = []
        for (row_id,) in rows:
            with self.engine.begin() as conn:
                won = conn.execute(
                    update(OutboxItem)
                    .where(
                        OutboxItem.id == row_id,
                        OutboxItem.status == "pending",
                        or_(OutboxItem.lease_until.is_(None), OutboxItem.lease_until < now),
                    )
                    .values(lease_until=now + lease)
                ).rowcount
                if not won:
                    continue
                r = conn.execute(
                    select(
                        OutboxItem.id,
                        OutboxItem.subscription_id,
                        OutboxItem.item_key,
                        OutboxItem.payload,
                        OutboxItem.attempts,
                        Subscription.url_encrypted,
                    )
                    .join(Subscription, Subscription.id == OutboxItem.subscription_id)
                    .where(OutboxItem.id == row_id)
                ).first()
            if r is not None:
                claimed.append(Due(r.id, r.subscription_id, r.item_key, dict(r.payload), r.attempts, r.url_encrypted))
        return claimed

    def delivered(self, row_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(OutboxItem)
                .where(OutboxItem.id == row_id)
                .values(status="delivered", delivered_at=utcnow(), lease_until=None, attempts=OutboxItem.attempts + 1)
            )

    def failed(self, row_id: int, error: str, retry_in: timedelta | None) -> None:
        """Count a failed attempt: due again after ``retry_in``, or ``dead`` when None."""
        now = utcnow()
        values: dict[str, Any] = {"lease_until": None, "attempts": OutboxItem.attempts + 1, "last_error": error[:300]}
        if retry_in is None:
            values["status"] = "dead"
        else:
            values["next_attempt_at"] = now + retry_in
        with self.engine.begin() as conn:
            conn.execute(update(OutboxItem).where(OutboxItem.id == row_id).values(**values))

    def counts(self) -> dict[str, int]:
        """Rows by status."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all()
        return {str(s): int(n) for s, n in rows}

    def next_due(self) -> datetime | None:
        """When the earliest pending row is due."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.min(OutboxItem.next_attempt_at)).where(OutboxItem.status == "pending")
            ).scalar_one_or_none()
