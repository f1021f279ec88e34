"""IngressMetrics: the calls an ingress serves, for Prometheus (``GET /metrics``).

``perdure_ingress_requests_total{service,handler,code}``, ``perdure_ingress_request_seconds``
(a histogram by service and handler) and ``perdure_ingress_requests_in_flight``. Labels are
bounded: service and handler come from the registry's routes, and a path that routes nowhere
counts under ``service=""``, whatever the client sent.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Seconds: a handler's latency spans sub-millisecond no-ops to minute-long calls."""


class IngressMetrics:
    """The ingress's figures, on a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "perdure_ingress_requests",
            "Calls to handlers answered, by target and HTTP status code",
            ["service", "handler", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "perdure_ingress_request_seconds",
            "Time from a call's arrival to its answer",
            ["service", "handler"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "perdure_ingress_requests_in_flight",
            "Calls waiting for their answer now",
            registry=self.registry,
        )
        self._latency: dict[tuple[str, str], Histogram] = {}
        self._answered: dict[tuple[str, str, int], Counter] = {}

    def observe(self, service: str, handler: str, code: int, seconds: float) -> None:
        """Counts one answered call (a few microseconds: the labelled children are cached)."""
        latency = self._latency.get((service, handler))
        if latency is None:
            latency = self._latency[(service, handler)] = self.latency.labels(service, handler)
        latency.observe(seconds)
        answered = self._answered.get((service, handler, code))
        if answered is None:
            answered = self.requests.labels(service, handler, str(code))
            self._answered[(service, handler, code)] = answered
        answered.inc()
