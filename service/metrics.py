"""Prometheus metrics, one registry per app (no process globals).

because_requests_total{route, method, status}      HTTP requests answered
because_request_seconds{route, method}             latency histogram (s)
because_requests_in_flight                         requests inside the app now (the load
                                                   shedder's count; probes left out)
because_shed_total                                 requests shed (503): too many in flight
because_scorer_batch_size                          requests per micro-batch
because_scorer_seconds                             one micro-batch's scoring call (s)
because_scorer_queue_depth                         requests waiting for the next micro-batch
because_redis_seconds{operation}                   one store operation's Redis time (s):
                                                   history_read, history_read_many,
                                                   history_write, history_delete, ping,
                                                   rate_limit
because_redis_errors_total                         requests that failed on Redis (503)
because_model_info{version, device}                1 for the version this process serves
because_model_swaps_total{outcome}                 model versions swapped in / refused
because_items_folded_total                         items folded into the served model
process_*                                          resident memory, CPU seconds, open fds,
                                                   start time (Linux: read from /proc)
python_gc_*, python_info                           collections per generation, interpreter

Latency histograms count seconds; a request's `route` is its template
(`/v1/users/{user_id}/ratings`), never the raw path, so ids do not explode the label set.
Every figure is per process: with `--workers N` a scrape answers one worker's
(docs/operations.md, Observability).
"""

from __future__ import annotations

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Redis answers a GET in well under a millisecond on a LAN; a WAIT for a replica or an
# fsync-always write takes milliseconds; past BECAUSE_REDIS_TIMEOUT_S (0.5 s) it failed.
REDIS_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
# One batch: a handful of milliseconds for a history against 100 candidates on a CPU,
# hundreds for a whole large catalogue.
SCORER_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "because_requests_total",
            "HTTP requests",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "because_request_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        # Read from the load shedder at each scrape (`LoadShedder` sets its function).
        self.in_flight = Gauge(
            "because_requests_in_flight",
            "requests inside this process now (health probes and metrics left out)",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "because_scorer_batch_size",
            "requests per scorer batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.scorer_seconds = Histogram(
            "because_scorer_seconds",
            "time of one micro-batch's scoring call on the scorer thread",
            buckets=SCORER_BUCKETS,
            registry=self.registry,
        )
        # Read from the micro-batcher at each scrape (the lifespan sets its function).
        self.scorer_queue_depth = Gauge(
            "because_scorer_queue_depth",
            "scoring requests waiting for the next micro-batch",
            registry=self.registry,
        )
        self.redis_seconds = Histogram(
            "because_redis_seconds",
            "time of one store operation's Redis round trip(s), waiting for a connection "
            "included",
            ["operation"],
            buckets=REDIS_BUCKETS,
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "because_redis_errors_total",
            "requests that failed because Redis did not answer",
            registry=self.registry,
        )
        self.shed = Counter(
            "because_shed_total",
            "requests answered 503 at once: BECAUSE_MAX_IN_FLIGHT were in flight",
            registry=self.registry,
        )
        self.model_info = Gauge(
            "because_model_info",
            "1 for the model version this process serves, and on which device",
            ["version", "device"],
            registry=self.registry,
        )
        self.model_swaps = Counter(
            "because_model_swaps_total",
            "model versions swapped in (ok) or refused (refused: damaged or incompatible)",
            ["outcome"],
            registry=self.registry,
        )
        self.items_folded = Counter(
            "because_items_folded_total",
            "items folded into the served model by this process's fold-in worker",
            registry=self.registry,
        )

    def serving(self, version: str, device: str) -> None:
        """`version` is now served: its info series is 1 and the one before is gone."""
        self.model_info.clear()
        self.model_info.labels(version, device).set(1)

    def redis_call(self, operation: str, seconds: float) -> None:
        """One store operation took `seconds` (the stores' `observe` callback)."""
        self.redis_seconds.labels(operation).observe(seconds)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (not the raw path, so
    user ids do not explode the label set)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - started)
