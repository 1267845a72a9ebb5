"""What the live path does after storing a batch's classifications: watchlist matches and notifications.

:class:`LiveAlerting` matches the new alerts' positions against every watchlist
(:mod:`cosmic_ray.serve.watchlists`), records the matches, and inserts one outbox row per
subscription each new alert or match satisfies (:mod:`cosmic_ray.serve.subscriptions`). Nothing is
sent here: a background :class:`~cosmic_ray.serve.delivery.Deliverer` (or ``cosmic-ray notify run``)
drains the outbox, so a slow or failing receiver never slows or stops the live path.

Example:
    >>> alerting = LiveAlerting.from_settings(Settings())              # doctest: +SKIP
    >>> alerting.after_store(new_rows, positions_of(batch))            # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.engine import Engine

from cosmic_ray.core.config import Settings
from cosmic_ray.core.errors import ConfigError
from cosmic_ray.serve.db import Classification, open_engine
from cosmic_ray.serve.delivery import Deliverer
from cosmic_ray.serve.secretbox import secret_box
from cosmic_ray.serve.subscriptions import Outbox, Subscriptions
from cosmic_ray.serve.watchlists import AlertPosition, Watchlists

log = logging.getLogger(__name__)


@dataclass
class AlertingResult:
    """What one batch gave: new watchlist matches and notifications queued."""

    matches: int = 0
    queued: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"watchlist_matches": self.matches, "notifications_queued": self.queued}


def positions_of(batch: pa.Table | Iterable[Mapping[str, Any]]) -> dict[int, AlertPosition]:
    """Each alert's position: the lake rows of the alert's own candidate (``candid == alert_candid``),
    or ``candidate.ra/dec`` of decoded alert records. Alerts without a finite position are left out."""
    out: dict[int, AlertPosition] = {}
    if isinstance(batch, pa.Table):
        names = set(batch.column_names)
        if not {"alert_candid", "candid", "ra", "dec", "object_id"} <= names:
            return out
        rows = batch.select(["alert_candid", "candid", "ra", "dec", "object_id"]).to_pylist()
        for r in rows:
            if r["alert_candid"] is not None and r["candid"] == r["alert_candid"]:
                _add(out, int(r["candid"]), r["object_id"], r["ra"], r["dec"])
        return out
    for record in batch:
        cand = record.get("candidate") or {}
        try:
            _add(out, int(record["candid"]), str(record["objectId"]), cand.get("ra"), cand.get("dec"))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _add(out: dict[int, AlertPosition], candid: int, object_id: str, ra: Any, dec: Any) -> None:
    if isinstance(ra, (int, float)) and isinstance(dec, (int, float)) and math.isfinite(ra) and math.isfinite(dec):
        out[candid] = AlertPosition(candid, str(object_id), float(ra) % 360.0, float(dec))


def stored_rows(engine: Engine, candids: Iterable[int]) -> list[dict[str, Any]]:
    """The stored classifications of ``candids`` as the live path's rows (``class``, ``probabilities``...)."""
    wanted = [int(c) for c in candids]
    out: list[dict[str, Any]] = []
    with engine.connect() as conn:
        for start in range(0, len(wanted), 900):
            for r in conn.execute(select(Classification).where(Classification.candid.in_(wanted[start : start + 900]))):
                out.append(
                    {
                        "candid": r.candid,
                        "object_id": r.object_id,
                        "class": r.label,
                        "probabilities": r.probabilities,
                        "open_set_score": r.open_set_score,
                        "novel": r.novel,
                        "rare": r.rare,
                        "model_version": r.model_version,
                    }
                )
    return out


class LiveAlerting:
    """Watchlists, subscriptions and the outbox of one store, for the live path.

    Args:
        watchlists, subscriptions, outbox: over the event store's engine.
        deliverer: woken after a batch queued notifications (None: another process drains).
    """

    def __init__(
        self,
        watchlists: Watchlists,
        subscriptions: Subscriptions,
        outbox: Outbox,
        deliverer: Deliverer | None = None,
    ):
        self.watchlists = watchlists
        self.subscriptions = subscriptions
        self.outbox = outbox
        self.deliverer = deliverer

    @classmethod
    def from_settings(cls, settings: Settings, deliver: bool = False) -> LiveAlerting:
        """Over the settings' event store; ``deliver``: start a background deliverer in this process.

        ``COSMIC_RAY_RARE_WEBHOOK_URL``, when set, becomes the ``_system`` ``rare`` subscription, so
        the old rare webhook goes through the outbox too.
        """
        engine = open_engine(settings.event_store_url)
        subscriptions = Subscriptions(engine, secret_box(settings))
        if settings.rare_webhook_url:
            try:
                subscriptions.ensure_system_rare(settings.rare_webhook_url)
            except ConfigError as exc:  # no webhook key: the live path goes on without the rare webhook
                log.error("COSMIC_RAY_RARE_WEBHOOK_URL not subscribed: %s", exc)
        outbox = Outbox(engine)
        deliverer = None
        if deliver:
            deliverer = Deliverer.from_settings(settings, outbox)
            deliverer.start()
        return cls(Watchlists(engine), subscriptions, outbox, deliverer)

    def after_store(
        self,
        new_rows: Sequence[Mapping[str, Any]],
        positions: Mapping[int, AlertPosition],
        already_stored: Iterable[int] = (),
    ) -> AlertingResult:
        """Match and queue for the classifications stored just now (``new_rows``), and again for
        ``already_stored`` candids of the batch (read back from the store): a batch read again after
        the live path died between storing and queueing gets its matches and notifications then;
        what was queued before is not queued twice (matches and outbox rows are unique per key).
        Returns the matches and notifications that are new."""
        result = AlertingResult()
        rows = list(new_rows) + stored_rows(self.watchlists.engine, already_stored)
        if not rows:
            return result
        wanted = {int(r["candid"]) for r in rows}
        found = self.watchlists.match(p for c, p in positions.items() if c in wanted)
        new_matches = self.watchlists.record(found)
        result.matches = len(new_matches)
        # every match (not only the new ones): a repeat finds its outbox row and adds nothing
        result.queued = self.outbox.enqueue(self.subscriptions.notifications(rows, found))
        if result.queued and self.deliverer is not None:
            self.deliverer.wake()
        return result

    def close(self) -> None:
        if self.deliverer is not None:
            self.deliverer.stop()
