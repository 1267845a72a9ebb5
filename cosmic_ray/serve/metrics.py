"""Prometheus metrics of the API (served at ``/metrics`` by the ingress).

Request counts and latencies are per ingress process; rare events and classifications come
from the event store, so they count the live path too.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from cosmic_ray.serve.events import Events

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The HTTP methods that get a label value of their own; any other method is counted as ``OTHER``,
#: so a client cannot create metric series (memory) by inventing methods.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"


@dataclass(frozen=True)
class ApiMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    predictions: Counter
    model_version: Gauge
    coalesced: Histogram


@functools.lru_cache(maxsize=1)
def api_metrics() -> ApiMetrics:
    """The process's metrics, created on first use (never at import)."""
    registry = CollectorRegistry()
    return ApiMetrics(
        registry=registry,
        requests=Counter(
            "cosmic_ray_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=registry,
        ),
        latency=Histogram(
            "cosmic_ray_http_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        ),
        predictions=Counter(
            "cosmic_ray_predictions",
            "Light curves classified over the API, by class and rarity.",
            ["label", "rare"],
            registry=registry,
        ),
        model_version=Gauge("cosmic_ray_model_version", "The model version served (as a number).", registry=registry),
        coalesced=Histogram(
            "cosmic_ray_coalesced_batch_size",
            "Single /predict requests per model call of this ingress (load-adaptive coalescing: 1 when idle).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=registry,
        ),
    )


class StoreCollector:
    """Counts from the event store at scrape time (classifications and rare events of the live path)."""

    def __init__(self, events: Events, ttl_s: float = 5.0):
        self.events = events
        self.ttl_s = ttl_s
        self._cached: tuple[float, int, int] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > self.ttl_s:
            self._cached = (now, self.events.count_classifications(), self.events.count_classifications(rare=True))
        _, total, rare = self._cached
        yield GaugeMetricFamily("cosmic_ray_stored_classifications", "Classifications in the event store.", value=total)
        yield GaugeMetricFamily("cosmic_ray_rare_events", "Rare events in the event store.", value=rare)


def method_label(method: str) -> str:
    """The ``method`` label of a request: the method if it is a standard one, else ``OTHER``."""
    return method if method in KNOWN_METHODS else OTHER_METHOD


def status_label(status: int) -> str:
    """The ``status`` label: the code if it is a valid HTTP status (100-599), else ``other``."""
    return str(status) if 100 <= status <= 599 else "other"


def observe(route: str, method: str, status: int, seconds: float) -> None:
    """Count one request. Every label has a bounded set of values (routes are the app's templates)."""
    m = api_metrics()
    m.requests.labels(route, method_label(method), status_label(status)).inc()
    m.latency.labels(route).observe(seconds)


def render() -> bytes:
    return generate_latest(api_metrics().registry)
