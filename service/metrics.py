"""Prometheus metrics, one registry per app (no process globals).

because_requests_total{route, method, status}
because_request_seconds{route, method}            latency histogram
because_scorer_batch_size                          requests per micro-batch
because_redis_errors_total                         requests that failed on Redis
because_shed_total                                 requests shed (503): too many in flight
because_model_swaps_total{outcome}                 model versions swapped in / refused
because_items_folded_total                         items folded into the served model
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        self.batch_size = Histogram(
            "because_scorer_batch_size",
            "requests per scorer batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
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
