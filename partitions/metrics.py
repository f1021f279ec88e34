"""WorkerMetrics: every counter of a worker process, in one place (prometheus-client)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_STEP_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class WorkerMetrics:
    """The worker's Prometheus metrics, on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records_applied = Counter(
            "perdure_records_applied", "Log records applied to partition state", registry=r
        )
        self.partitions_owned = Gauge(
            "perdure_partitions_owned", "Partitions assigned to this worker", registry=r
        )
        self.partitions_led = Gauge(
            "perdure_partitions_led", "Partitions this worker leads", registry=r
        )
        self.handlers_running = Gauge(
            "perdure_handlers_running", "Handler tasks alive in the invoker", registry=r
        )
        self.invocations_completed = Counter(
            "perdure_invocations_completed",
            "Invocations this worker completed, by outcome",
            ["outcome"],
            registry=r,
        )
        self.suspensions = Counter(
            "perdure_suspensions", "Handlers suspended while waiting (no task held)", registry=r
        )
        self.attempts_failed = Counter(
            "perdure_attempts_failed", "Handler attempts that failed and will retry", registry=r
        )
        self.invocations_parked = Gauge(
            "perdure_invocations_parked",
            "Invocations this worker leads but has no handler for (waiting for one that has)",
            registry=r,
        )
        self.partitions_blocked = Gauge(
            "perdure_partitions_blocked",
            "Partitions stopped at a record this worker cannot apply (see the worker's log)",
            registry=r,
        )
        self.action_errors = Counter(
            "perdure_action_errors",
            "Leader actions that raised (logged with their traceback; the worker goes on)",
            registry=r,
        )
        self.step_ack_seconds = Histogram(
            "perdure_step_ack_seconds",
            "From a step's proposal to its acknowledgement by the leader",
            buckets=_STEP_BUCKETS,
            registry=r,
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serves ``/metrics`` over HTTP on ``port``."""
        start_http_server(port, addr=host, registry=self.registry)
