"""Assemble a stream consumer from settings and options (``cosmic-ray stream``, the demo, the
benchmarks): client configurations from the environment, the live path as the classify hook,
the publisher when a topic is given."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from cosmic_ray.core.config import Settings
from cosmic_ray.stream.broker import ensure_topics
from cosmic_ray.stream.consumer import ClassifyHook, Rows, StreamConfig, StreamConsumer
from cosmic_ray.stream.decode import Message
from cosmic_ray.stream.kafka_conf import client_conf, consumer_conf, producer_conf, redacted
from cosmic_ray.stream.publish import Publisher

log = logging.getLogger(__name__)


def live_hook(settings: Settings) -> ClassifyHook:
    """The live path (served model -> event store) as the consumer's hook; connects to Ray first.

    Raises:
        RuntimeError: no Ray cluster runs (``cosmic-ray serve up`` first, or set ``RAY_ADDRESS``).
    """
    # deferred: ray and the serve stack are heavy; only --classify needs them
    from cosmic_ray.ops import cluster
    from cosmic_ray.serve import live

    cluster.connect(settings, start_local=False)

    def hook(table: pa.Table, before_store: Callable[[Rows], object] | None) -> Any:
        return live.on_batch(table, settings, before_store=before_store)

    return hook


def build_consumer(
    settings: Settings,
    bootstrap: str,
    config: StreamConfig,
    lake_dir: Path | None = None,
    classify: bool = False,
    publish_topic: str | None = None,
    create_topics: bool = False,
    classify_hook: ClassifyHook | None = None,
    on_committed: Callable[[list[Message], float], None] | None = None,
) -> StreamConsumer:
    """A :class:`StreamConsumer` for ``bootstrap`` with this settings' lake, quarantine and credentials.

    Args:
        settings: where the lake, the quarantine and the event store are; Kafka security settings.
        bootstrap: ``host:port[,...]`` of the brokers.
        config: topics, group, batch size, stop conditions.
        lake_dir: the lake (default: the settings' lake).
        classify: classify through the served model and store (the live path).
        publish_topic: publish each classification to this topic (needs ``classify``).
        create_topics: create missing topics first (the embedded broker; real brokers usually refuse).
        classify_hook: a hook of the caller's instead of the live path (its own Ray connection).
        on_committed: called with each committed batch and the time it was committed.
    """
    conf = consumer_conf(bootstrap, config.group, settings)
    log.info("stream: kafka settings %s", redacted(conf))
    if create_topics:
        ensure_topics(client_conf(bootstrap, settings), [*config.topics, *([publish_topic] if publish_topic else [])])
    hook = classify_hook if classify_hook is not None else (live_hook(settings) if classify else None)
    publisher = Publisher(producer_conf(bootstrap, settings), publish_topic) if publish_topic else None
    return StreamConsumer(
        conf,
        config,
        lake_dir or settings.lake_dir,
        settings.quarantine_dir,
        classify=hook,
        publisher=publisher,
        on_committed=on_committed,
    )
