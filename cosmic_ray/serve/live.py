"""The live path: new alerts -> the model replicas (through a Serve ``DeploymentHandle``, in
chunks, never one HTTP call per alert) -> the event store, exactly once per alert ``candid``,
with rare events marked; then the new alerts are matched against the watchlists and the
subscriptions' notifications queued in the outbox (:mod:`cosmic_ray.serve.alerting`), which a
background deliverer drains to the webhooks (``COSMIC_RAY_RARE_WEBHOOK_URL`` included).

The ingest watcher calls :func:`on_batch` with each batch it reads (a lake-schema table), or
:func:`classify_and_store` with a handle and the store's events it keeps open.

Example:
    >>> import ray; ray.init(address="auto")                      # doctest: +SKIP
    >>> result = classify_and_store(records, model_handle(), Store.open(url).events)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyarrow as pa
from ray import serve
from ray.serve.handle import DeploymentHandle

from cosmic_ray.core.config import Settings
from cosmic_ray.core.errors import BadAlertError
from cosmic_ray.ingest.objects import lake_summaries
from cosmic_ray.serve.alerting import LiveAlerting, positions_of
from cosmic_ray.serve.events import Events
from cosmic_ray.serve.items import ModelItem
from cosmic_ray.serve.replica import MODEL_DEPLOYMENT
from cosmic_ray.serve.skyobjects import ObjectTable
from cosmic_ray.serve.store import Store
from cosmic_ray.sources import ztf

log = logging.getLogger(__name__)

APP_NAME = "cosmic_ray"
CHUNK = 256  # alerts per handle call: big enough to amortise, small enough to spread over replicas


@dataclass
class LiveResult:
    alerts: int = 0  # alerts received
    already_stored: int = 0  # skipped: classified before (same candid)
    classified: int = 0
    stored: int = 0  # newly stored now
    rare: list[dict[str, Any]] = field(default_factory=list)  # the new rare events
    unusable: int = 0  # no detection to classify
    seconds: float = 0.0
    watchlist_matches: int = 0  # new matches of the watchlists
    notifications_queued: int = 0  # outbox rows added for the subscriptions

    def to_dict(self) -> dict[str, Any]:
        return {
            "alerts": self.alerts,
            "already_stored": self.already_stored,
            "classified": self.classified,
            "stored": self.stored,
            "rare": len(self.rare),
            "unusable": self.unusable,
            "watchlist_matches": self.watchlist_matches,
            "notifications_queued": self.notifications_queued,
            "seconds": round(self.seconds, 3),
        }


def model_handle(app_name: str = APP_NAME) -> DeploymentHandle:
    """The model deployment's handle on the connected Ray cluster (``ray.init`` first)."""
    return serve.get_deployment_handle(MODEL_DEPLOYMENT, app_name=app_name)


def items_from_records(records: Iterable[Mapping[str, Any]]) -> tuple[list[ModelItem], int]:
    """Decoded alert records (Avro dicts) -> model items, one per alert; and the unusable count."""
    items, bad = [], 0
    for record in records:
        try:
            rows = [r for r in ztf.alert_to_rows(dict(record)) if r["source"] == "ztf_alert"]
        except (BadAlertError, KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("alert not classified: %s", exc)
            bad += 1
            continue
        items.append(ModelItem(object_id=str(record["objectId"]), rows=rows, candid=int(record["candid"])))
    return items, bad


def items_from_table(table: pa.Table) -> list[ModelItem]:
    """A lake-schema table of alert points -> one model item per alert (``alert_candid``).

    Each alert carries its own history (``prv_candidates``), so its points are its light curve.
    """
    if table.num_rows == 0 or "alert_candid" not in table.column_names:
        return []
    keep = ["object_id", "source", "mjd", "band", "mag", "magerr", "is_limit", "night", "alert_candid"]
    by_alert: dict[int, list[dict[str, Any]]] = {}
    for row in table.select([c for c in keep if c in table.column_names]).to_pylist():
        candid = row.pop("alert_candid")
        if candid is None or row["source"] != "ztf_alert":
            continue
        by_alert.setdefault(int(candid), []).append(row)
    return [ModelItem(object_id=rows[0]["object_id"], rows=rows, candid=candid) for candid, rows in by_alert.items()]


def classify_and_store(
    batch: pa.Table | Iterable[Mapping[str, Any]],
    handle: DeploymentHandle,
    store: Events,
    webhook_url: str | None = None,
    chunk: int = CHUNK,
    before_store: Callable[[list[dict[str, Any]]], object] | None = None,
    alerting: LiveAlerting | None = None,
) -> LiveResult:
    """Classify a batch of alerts on the model replicas and store each classification once.

    Args:
        batch: a lake-schema table (the watcher's batch) or decoded alert records.
        handle: the model deployment's ``DeploymentHandle`` (:func:`model_handle`).
        store: the event store's events.
        webhook_url: a Slack-compatible incoming webhook told about new rare events, posted here
            and now (kept for direct callers; :func:`on_batch` queues them in the outbox instead).
        chunk: alerts per handle call.
        before_store: called with the new classification rows before they are stored (the stream's
            publisher: a failure there leaves them unstored, so they are classified again).
        alerting: watchlist matching and subscription notifications of the new alerts (queued only).
    """
    start = time.perf_counter()
    result = LiveResult()
    if isinstance(batch, pa.Table):
        items = items_from_table(batch)
    else:
        batch = list(batch)  # read twice: the items, then the positions of the alerts
        items, result.unusable = items_from_records(batch)
    result.alerts = len(items) + result.unusable
    known = store.known_candids(i.candid for i in items if i.candid is not None)
    todo = [i for i in items if i.candid not in known]
    result.already_stored = len(items) - len(todo)
    # all chunks in flight at once: the router spreads them over the replicas
    responses = [handle.predict_many.remote(todo[i : i + chunk]) for i in range(0, len(todo), chunk)]
    rows = []
    for response in responses:
        for answer in response.result():
            if "error" in answer:
                result.unusable += 1
                continue
            rows.append(answer)
    result.classified = len(rows)
    if before_store is not None and rows:
        before_store(rows)
    new = set(store.record_classifications(rows))
    result.stored = len(new)
    # the object table's class fields: each object's newest classification of this batch
    ObjectTable(store.engine).record_classes(r for r in rows if r["candid"] in new)
    result.rare = [r for r in rows if r["rare"] and r["candid"] in new]
    if result.rare and webhook_url:
        notify_rare(webhook_url, result.rare)
    if alerting is not None and (new or known):
        try:
            # the alerts stored before too (a batch read again after a crash): their matches and
            # notifications are queued if they were not yet (both are kept once per key)
            done = alerting.after_store([r for r in rows if r["candid"] in new], positions_of(batch), known)
            result.watchlist_matches, result.notifications_queued = done.matches, done.queued
        except Exception:  # noqa: BLE001 - the classifications are stored; matching must not stop the stream
            log.exception("watchlist matching / notification queueing failed for this batch")
    result.seconds = time.perf_counter() - start
    log.info("live batch: %s", result.to_dict())
    return result


def notify_rare(webhook_url: str, events: list[dict[str, Any]], timeout: float = 5.0) -> bool:
    """Post one Slack-compatible message (``{"text": ...}``) listing rare events; never raises."""
    lines = [
        f"• {e['object_id']} (candid {e['candid']}): {e['class']} p={e['probabilities'][e['class']]:.2f}, "
        f"open-set {e['open_set_score']:.2f}, model v{e['model_version']}"
        for e in events[:20]
    ]
    more = f"\n… and {len(events) - 20} more" if len(events) > 20 else ""
    try:
        answer = httpx.post(
            webhook_url,
            json={"text": f"cosmic_ray: {len(events)} rare event(s)\n" + "\n".join(lines) + more},
            timeout=timeout,
        )
        answer.raise_for_status()
        return True
    except httpx.HTTPError as exc:
        log.warning("rare-event webhook failed: %s", exc)
        return False


_DEFAULTS: dict[str, Any] = {}


def on_batch(
    table: pa.Table,
    settings: Settings | None = None,
    before_store: Callable[[list[dict[str, Any]]], object] | None = None,
) -> LiveResult:
    """The watcher's and the stream's hook: classify and store a batch with the default handle and
    store, match the watchlists and queue notifications (a background deliverer of this process
    sends them, the rare webhook's included).

    Needs a connected Ray cluster running the Serve app (``cosmic-ray serve up``).
    """
    settings = settings or Settings()
    key = settings.event_store_url
    if _DEFAULTS.get("key") != key:
        stop_alerting()
        _DEFAULTS.update(
            key=key,
            store=Store.open(settings.event_store_url).events,
            handle=model_handle(),
            alerting=LiveAlerting.from_settings(settings, deliver=True),
        )
    if table.num_rows:  # the batch is in the lake already: its objects' positions and counts
        ids = set(table.column("object_id").to_pylist())
        ObjectTable(_DEFAULTS["store"].engine).upsert_summaries(lake_summaries(settings.lake_dir, ids))
    return classify_and_store(
        table, _DEFAULTS["handle"], _DEFAULTS["store"], alerting=_DEFAULTS["alerting"], before_store=before_store
    )


def stop_alerting() -> None:
    """Stop this process's background deliverer (what is pending stays in the outbox for the next one)."""
    alerting = _DEFAULTS.pop("alerting", None)
    if alerting is not None:
        alerting.close()
