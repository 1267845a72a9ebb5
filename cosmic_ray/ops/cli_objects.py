"""``cosmic-ray objects``, ``cutouts`` and ``notify``: the object table, alert stamps, webhook notifications."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from cosmic_ray.core.errors import CosmicRayError
from cosmic_ray.ops.cli_common import emit as _emit
from cosmic_ray.ops.cli_common import fail as _fail
from cosmic_ray.ops.cli_common import settings as _settings

notify_app = typer.Typer(
    no_args_is_help=True, help="Webhook notifications: drain the outbox, queue the nightly digest."
)


# ----------------------------------------------------------------------------- objects
objects_app = typer.Typer(no_args_is_help=True, help="The object table of the event store (positions, cone search).")


@objects_app.command("rebuild")
def objects_rebuild(
    lake: Optional[Path] = typer.Option(None, help="Lake folder (default: $COSMIC_RAY_HOME/lake)."),
) -> None:
    """Fill the object table from the whole lake (positions, detections, context); class fields are kept."""
    from cosmic_ray.serve.skyobjects import refresh_from_lake  # deferred: the event store is not needed by --help

    s = _settings()
    lake_dir = lake or s.lake_dir
    if not lake_dir.is_dir():
        _fail(f"no lake at {lake_dir}: ingest something first (cosmic-ray ingest ...)")
    start = time.perf_counter()
    written = refresh_from_lake(lake_dir, s.event_store_url)
    _emit(
        {
            "objects": written,
            "store": s.event_store_url.split("://", 1)[0],
            "seconds": round(time.perf_counter() - start, 3),
        }
    )


# ----------------------------------------------------------------------------- cutouts
cutouts_app = typer.Typer(no_args_is_help=True, help="ZTF alert stamps kept beside the lake (<lake>/_cutouts).")


@cutouts_app.command("prune")
def cutouts_prune(
    lake: Optional[Path] = typer.Option(None, help="Lake folder (default: $COSMIC_RAY_HOME/lake)."),
    days: Optional[float] = typer.Option(
        None, min=0.0, help="Keep stamps stored within this many days (default: COSMIC_RAY_CUTOUT_RETENTION_DAYS)."
    ),
) -> None:
    """Drop the stamps stored longer ago than the retention, and the files no kept alert uses."""
    from cosmic_ray.ingest.cutouts import CutoutStore  # deferred: pyarrow is not needed by --help

    _emit(CutoutStore(lake or _settings().lake_dir).prune(days).to_dict())


# ----------------------------------------------------------------------------- notify
@notify_app.command("run")
def notify_run(
    once: bool = typer.Option(False, "--once", help="Deliver what is due now, then exit (cron, tests)."),
    poll: float = typer.Option(2.0, help="Seconds between looks at the outbox."),
) -> None:
    """Deliver the outbox's notifications to their webhooks (retries with back-off; never again after a 2xx)."""
    from cosmic_ray.serve import delivery  # deferred: httpx + the store, only for this command

    try:
        stats = delivery.run(_settings(), once=once, poll_s=poll)
    except CosmicRayError as exc:
        _fail(str(exc))
    _emit(stats.to_dict())


@notify_app.command("digest")
def notify_digest(
    night: str = typer.Option(..., help="The night, YYYYMMDD (UTC date of the classifications)."),
    top: Optional[int] = typer.Option(None, help="Objects per digest (default: each subscription's own)."),
) -> None:
    """Queue the night's most anomalous new objects for every digest subscription (`notify run` sends them)."""
    # deferred: each command imports what it runs, so `cosmic-ray --help` starts fast
    from cosmic_ray.serve.db import open_engine
    from cosmic_ray.serve.digest import queue_digest
    from cosmic_ray.serve.secretbox import secret_box
    from cosmic_ray.serve.subscriptions import Outbox, Subscriptions

    s = _settings()
    engine = open_engine(s.event_store_url)
    try:
        summary = queue_digest(engine, Subscriptions(engine, secret_box(s)), Outbox(engine), night, top)
    except CosmicRayError as exc:
        _fail(str(exc))
    _emit(summary)
