"""WorkerMetrics: every counter of a worker process, in one place (prometheus-client)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    make_wsgi_app,
)

from perdure.engine import census

if TYPE_CHECKING:
    from perdure.partitions.runtime.processor import PartitionProcessor

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
            "Invocations this worker completed, by handler and outcome (ok, failed)",
            ["service", "handler", "outcome"],
            registry=r,
        )
        self.attempts_started = Counter(
            "perdure_attempts_started",
            "Handler attempts started (first runs, retries, resumptions), by handler",
            ["service", "handler"],
            registry=r,
        )
        self.invocations_in_flight = Gauge(
            "perdure_invocations_in_flight",
            "Invocations of the partitions led here that have not ended, by status: scheduled, "
            "pending (waiting in an object key's inbox: the inbox depth), running, suspended, "
            "backing-off. Counted every few seconds from a snapshot of each store",
            ["status"],
            registry=r,
        )
        for status in census.IN_FLIGHT:
            self.invocations_in_flight.labels(status).set(0)
        self._census: dict[int, dict[str, int]] = {}
        self._census_lock = threading.Lock()
        self.timers_pending = Gauge(
            "perdure_timers_pending", "Durable timers armed by the partitions led here", registry=r
        )
        self.log_lag = Gauge(
            "perdure_log_lag_records",
            "Log records of the partitions owned here not applied yet (from fetch watermarks)",
            registry=r,
        )
        self.leader_epoch = Gauge(
            "perdure_leader_epoch",
            "The epoch of each partition led here",
            ["partition"],
            registry=r,
        )
        self.suspensions = Counter(
            "perdure_suspensions", "Handlers suspended while waiting (no task held)", registry=r
        )
        self.attempts_failed = Counter(
            "perdure_attempts_failed",
            "Handler attempts that failed and will retry, by handler",
            ["service", "handler"],
            registry=r,
        )
        self.remote_exchanges = Gauge(
            "perdure_remote_exchanges_in_flight",
            "Requests open to deployments' endpoints (Restate SDKs): one per attempt that runs, "
            "none for one that suspended",
            registry=r,
        )
        self.invocations_parked = Gauge(
            "perdure_invocations_parked",
            "Invocations this worker leads but has no handler for (waiting for one that has)",
            registry=r,
        )
        self.partitions_blocked = Gauge(
            "perdure_partitions_blocked",
            "Partitions stopped at a record this worker cannot read: an unknown version or bytes "
            "that do not decode (see the worker's log)",
            registry=r,
        )
        self.records_rejected = Counter(
            "perdure_records_rejected",
            "Records whose apply raised, rejected so that the partition goes on: what they "
            "belonged to failed with the error (engine/rejection.py; the log says which)",
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

        self.publish_seconds = Histogram(
            "perdure_publish_seconds",
            "From a ctx.publish to the commit of its Kafka transaction (record and journal entry)",
            buckets=_STEP_BUCKETS,
            registry=r,
        )

        self.restore_seconds = Histogram(
            "perdure_restore_seconds",
            "Loading a partition store from its backup",
            buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.backup_seconds = Histogram(
            "perdure_backup_seconds",
            "Writing one backup of a partition store to the backups topic",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.backup_bytes = Gauge(
            "perdure_backup_bytes",
            "Size of the newest backup this worker wrote, by partition",
            ["partition"],
            registry=r,
        )
        self.backup_lag_records = Gauge(
            "perdure_backup_lag_records",
            "Log records applied since the newest recorded backup, by partition (what a new "
            "owner replays after restoring it)",
            ["partition"],
            registry=r,
        )
        self.standby_partitions = Gauge(
            "perdure_standby_partitions",
            "Partitions this worker keeps a warm copy of without leading them",
            registry=r,
        )

        self.store_memory_bytes = Gauge(
            "perdure_store_memory_bytes",
            "RocksDB memory of every store of this worker: the shared block cache's use (data, "
            "index and filter blocks, and the memtables charged to it), and the part of it "
            "pinned (memtables, L0 index and filter blocks)",
            ["kind"],
            registry=r,
        )
        # RSS, CPU and open files of the worker (process_*), on this registry like the rest.
        ProcessCollector(registry=r)

    def serve(
        self, port: int, host: str = "127.0.0.1", problem: Callable[[], str | None] = lambda: None
    ) -> None:
        """Serves ``/metrics`` over HTTP on ``port``, and the worker's health (see
        :func:`serve_with_health`)."""
        serve_with_health(make_wsgi_app(self.registry), port, host, problem)

    def watch(self, processors: Mapping[int, PartitionProcessor]) -> None:
        """Gauges read at scrape time from the worker's partitions: the timers they armed."""

        def timers() -> int:
            return sum(len(p.timers) for p in list(processors.values()) if p.is_leader)

        self.timers_pending.set_function(timers)

    def measure_lag(
        self, consumer: Consumer, processors: Mapping[int, PartitionProcessor], log_topic: str
    ) -> None:
        """Sets the log's lag from the watermarks of the last fetch (no request to the broker).

        Called on the processor thread: a consumer's methods wait for its ``consume`` to
        return, so a scrape thread asking it would hang until the next batch.
        """
        behind = 0
        for partition, proc in processors.items():
            try:
                high = consumer.get_watermark_offsets(
                    TopicPartition(log_topic, partition), cached=True
                )[1]
            except KafkaException:
                continue
            if high >= 0:
                behind += max(0, high - proc.next_offset)
        self.log_lag.set(behind)

    def leading(self, partition: int, epoch: int) -> None:
        """This worker leads ``partition`` now, at ``epoch``."""
        self.partitions_led.inc()
        self.leader_epoch.labels(str(partition)).set(epoch)
        with self._census_lock:
            self._census[partition] = {}

    def not_leading(self, partition: int) -> None:
        """This worker led ``partition`` and does not any more."""
        self.partitions_led.dec()
        with contextlib.suppress(KeyError):
            self.leader_epoch.remove(str(partition))
        with self._census_lock:
            self._census.pop(partition, None)
            self._count_in_flight()

    def counted(self, partition: int, taken: census.Census) -> None:
        """The census of a led partition came (on the query thread): the gauges add it up."""
        with self._census_lock:
            if partition not in self._census:
                return  # no longer led here: its invocations are another worker's to count
            self._census[partition] = taken.counts
            self._count_in_flight()

    def _count_in_flight(self) -> None:
        for status in census.IN_FLIGHT:
            total = sum(c.get(status, 0) for c in self._census.values())
            self.invocations_in_flight.labels(status).set(total)


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def serve_with_health(
    metrics: WsgiApp,
    port: int,
    host: str = "127.0.0.1",
    problem: Callable[[], str | None] = lambda: None,
    thread_name: str = "metrics",
) -> None:
    """Serves ``metrics`` over HTTP on ``port`` from a thread, beside the health of the process:
    ``/health/live`` (200 while it answers) and ``/health/ready`` (503 with ``problem()`` in
    JSON while there is one, such as a partition blocked at a record it cannot read)."""

    def app(environ: dict[str, Any], respond: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/health", "/health/ready", "/health/live"):
            why = None if path == "/health/live" else problem()
            status = "200 OK" if why is None else "503 Service Unavailable"
            body = {"status": "ok"} if why is None else {"code": 503, "message": why}
            respond(status, [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        return metrics(environ, respond)

    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name=thread_name, daemon=True).start()


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """One thread per scrape: a slow client holds up no other."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not news: no line per request."""
