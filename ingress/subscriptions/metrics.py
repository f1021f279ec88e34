"""SubscriptionMetrics: the Prometheus metrics of the subscriptions an admin process runs."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector


class SubscriptionMetrics:
    """Per subscription (label ``subscription``): records, dead letters, in flight, lag."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        self.records = Counter(
            "perdure_subscription_records",
            "Records a subscription turned into invocations (or dead letters)",
            ["subscription"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "perdure_subscription_dead_lettered",
            "Records sent to the dead-letter topic, by reason",
            ["subscription", "reason"],
            registry=r,
        )
        self.in_flight = Gauge(
            "perdure_subscription_in_flight",
            "Invocations started from records and not yet ended",
            ["subscription"],
            registry=r,
        )
        self.lag = Gauge(
            "perdure_subscription_lag",
            "Records of the source topic not yet finished (high watermark minus commit position)",
            ["subscription"],
            registry=r,
        )
        self.paused = Gauge(
            "perdure_subscription_paused",
            "1 while the consumer is paused because max_in_flight is reached",
            ["subscription"],
            registry=r,
        )

    def forget(self, subscription: str) -> None:
        """Drops a deleted subscription's series."""
        for metric in (self.records, self.in_flight, self.lag, self.paused):
            with contextlib.suppress(KeyError):
                metric.remove(subscription)
