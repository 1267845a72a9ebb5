"""The nightly digest: the N most anomalous new objects of a night, queued for the ``digest`` subscriptions.

A night is a UTC date (``YYYYMMDD``) of the classifications' times. An object is new that night when
its first stored classification falls in it; objects are ranked by their highest open-set score of
the night. Each ``digest`` subscription gets one outbox row keyed ``digest-<night>`` (so running
the digest twice sends it once), with its own ``top`` (or the command's).

Example:
    >>> queue_digest(engine, subscriptions, outbox, "20210901", top=10)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from cosmic_ray.serve.db import Classification, StoreError
from cosmic_ray.serve.subscriptions import Outbox, Subscriptions

log = logging.getLogger(__name__)


def night_bounds(night: str) -> tuple[datetime, datetime]:
    """``YYYYMMDD`` -> its UTC start and end (naive). Raises: StoreError: not a date."""
    try:
        start = datetime.strptime(night, "%Y%m%d")
    except ValueError:
        raise StoreError(f"night {night!r} is not YYYYMMDD") from None
    return start, start + timedelta(days=1)


def most_anomalous(engine: Engine, night: str, top: int) -> list[dict[str, Any]]:
    """The ``top`` new objects of ``night`` by their highest open-set score, highest first."""
    start, end = night_bounds(night)
    first_seen = (
        select(Classification.object_id, func.min(Classification.classified_at).label("first"))
        .group_by(Classification.object_id)
        .subquery()
    )
    stmt = (
        select(Classification)
        .join(first_seen, first_seen.c.object_id == Classification.object_id)
        .where(
            first_seen.c.first >= start,
            first_seen.c.first < end,
            Classification.classified_at >= start,
            Classification.classified_at < end,
        )
        .order_by(Classification.open_set_score.desc(), Classification.id)
    )
    out: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for r in conn.execute(stmt):
            if r.object_id in out:
                continue
            out[r.object_id] = {
                "object_id": r.object_id,
                "candid": r.candid,
                "class": r.label,
                "open_set_score": r.open_set_score,
                "novel": r.novel,
                "rare": r.rare,
            }
            if len(out) >= top:
                break
    return list(out.values())


def queue_digest(
    engine: Engine, subscriptions: Subscriptions, outbox: Outbox, night: str, top: int | None = None
) -> dict[str, Any]:
    """Queue the night's digest for every ``digest`` subscription; returns what was queued."""
    subs = subscriptions.list_for(kind="digest")
    queued = 0
    objects = 0
    for s in subs:
        n = top or int(s.params.get("top", 10))
        picked = most_anomalous(engine, night, n)
        objects = max(objects, len(picked))
        payload = {"reason": f"digest of night {night}", "night": night, "objects": picked}
        queued += outbox.enqueue([(s.id, f"digest-{night}", payload)])
    log.info("digest of night %s: %d subscriptions queued, up to %d objects", night, queued, objects)
    return {"night": night, "subscriptions": len(subs), "queued": queued, "objects": objects}
