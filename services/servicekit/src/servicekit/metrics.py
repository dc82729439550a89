"""Prometheus metrics for HTTP services: request count and latency by method, route and status.

Each `HttpMetrics` owns its registry, so several apps in one process (tests) do not collide.
`route` must be the route template (`/items/{id}`), never the raw path, to bound cardinality.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

UNMATCHED_ROUTE = "<unmatched>"
# Headers a proxy adds on the way in. The gateway (and the local stack's edge) always sets
# X-Forwarded-For, and a client cannot remove what the gateway adds: a request that carries one
# came through the public route. Prometheus scrapes the pods directly, without one.
FORWARDING_HEADERS = ("x-forwarded-for", "forwarded")


def came_through_a_proxy(header: Callable[[str], str | None]) -> bool:
    """Whether a request arrived through the gateway; `header(name)` reads a request header.

    /metrics answers 404 to those: metrics stay inside the cluster.
    """
    return any(header(name) is not None for name in FORWARDING_HEADERS)


QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})  # probes: metrics yes, access log no

access_logger = logging.getLogger("servicekit.access")


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time spent handling HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = {"method": method, "route": route, "status": str(status)}
        self.requests.labels(**labels).inc()
        self.latency.labels(**labels).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The `/metrics` body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def record_request(
    metrics: HttpMetrics, *, method: str, path: str, route: str, status: int, seconds: float
) -> None:
    """What every framework adapter does when a request ends: one metrics sample, and one JSON
    access log line (`method path route status duration_ms`) unless it was a probe."""
    metrics.observe(method, route, status, seconds)
    if path in QUIET_PATHS:
        return
    access_logger.info(
        "%s %s %s",
        method,
        path,
        status,
        extra={
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
        },
    )
