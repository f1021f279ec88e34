"""AdminMetrics: the admin API's requests, for Prometheus (on the admin's ``/metrics``).

``perdure_admin_requests_total{route,method,code}`` and ``perdure_admin_request_seconds{route}``.
``route`` is the path template the request matched (``/invocations/{invocation_id}``), never
the path itself, so the label set stays bounded whatever clients send; a request that matched
no route (a 404, the web UI's files) counts under ``route=""``.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds: a list gathers every partition's answer through the log (tens of milliseconds)."""


class AdminMetrics:
    """The admin API's request counter and latency histogram, on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "perdure_admin_requests",
            "Admin API requests answered, by route template, method and HTTP status code",
            ["route", "method", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "perdure_admin_request_seconds",
            "Time from an admin API request's arrival to its answer, by route template",
            ["route"],
            buckets=_BUCKETS,
            registry=registry,
        )


class AdminMetricsMiddleware:
    """Counts each HTTP request of the app it wraps (plain ASGI: streaming stays untouched)."""

    def __init__(self, app: ASGIApp, metrics: AdminMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        code = 500  # what the client gets if the app raises before answering

        async def sending(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = _template(scope)
            if route != "/metrics":  # Prometheus's own scrapes are not the API's traffic
                self.metrics.requests.labels(route, scope["method"], str(code)).inc()
                self.metrics.latency.labels(route).observe(time.monotonic() - started)


def _template(scope: Scope) -> str:
    # FastAPI's router leaves the route it matched in the (shared) scope.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else ""
