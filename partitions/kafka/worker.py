"""Worker: a member of the cluster's consumer group that runs the partitions it is given.

The Kafka adapter of the partition runtime (partitions/runtime/). :meth:`Worker.open` makes
every part a worker needs, and the worker is made from them whole. Handlers run on the asyncio
loop of the calling thread; the consumer, its rebalance callbacks, the stores and the lease's
renewals run on a thread of their own (:class:`~perdure.partitions.kafka.member.GroupMember`),
whose calls into the invoker cross over to the loop (partitions/kafka/crossing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from perdure.engine.records import AckEntry, StartInvocation
from perdure.partitions.config import WorkerSettings
from perdure.partitions.handlers.invoker import Invoker
from perdure.partitions.kafka.crossing import LoopCrossing
from perdure.partitions.kafka.member import GroupMember
from perdure.partitions.kafka.publisher import Publisher
from perdure.partitions.kafka.registry import publish_services
from perdure.partitions.kafka.topics import ensure_topics
from perdure.partitions.lease import Lease, LeaseKeeper
from perdure.partitions.log import LogWriter
from perdure.partitions.metrics import WorkerMetrics
from perdure.partitions.queries import QueryAnswerer
from perdure.partitions.remote.invoker import RemoteInvoker
from perdure.partitions.remote.service_directory import ServiceDirectory
from perdure.partitions.runtime.leader import LeaderTiming, PartitionRuntime
from perdure.partitions.runtime.ports import WallClock
from perdure.partitions.runtime.processor import PartitionProcessor
from perdure.partitions.storage import heap
from perdure.partitions.storage.recovery import Recovery
from perdure.partitions.storage.store import configure_memory, memory_in_use
from perdure.process.kafka_clusters import KafkaClusters
from perdure.process.kafka_settings import heartbeat_interval_ms
from perdure.sdk import Endpoint

log = logging.getLogger("perdure.worker")


@dataclass
class Worker:
    """Runs ``endpoint``'s handlers for the partitions the group assigns to this process."""

    endpoint: Endpoint
    settings: WorkerSettings
    leader_id: str
    partition_count: int
    metrics: WorkerMetrics
    lease: Lease
    """Whether the group still counts this worker in (partitions/lease.py)."""
    crossing: LoopCrossing
    writer: LogWriter
    queries: QueryAnswerer
    recovery: Recovery
    publisher: Publisher
    directory: ServiceDirectory
    remote: RemoteInvoker
    """Runs the services of registered deployments (Restate SDKs)."""
    runtime: PartitionRuntime
    invoker: Invoker
    _stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    async def open(cls, endpoint: Endpoint, settings: WorkerSettings) -> Worker:
        """Makes the worker's parts (its topics first, waiting for Kafka) and the worker."""
        s = settings
        leader_id = f"{s.worker_name}-{uuid.uuid4().hex[:8]}"
        heap.limit_arenas(s.malloc_arenas)
        configure_memory(s.store_cache_bytes, s.store_memtable_bytes)
        metrics = WorkerMetrics()
        memory = metrics.store_memory_bytes
        memory.labels("block_cache").set_function(lambda: memory_in_use()[0])
        memory.labels("pinned").set_function(lambda: memory_in_use()[1])
        partitions = await asyncio.to_thread(
            ensure_topics,
            s.bootstrap,
            s.names,
            s.partitions,
            s.connect_timeout_s,
            s.segment_bytes,
            s.replication_factor,
            s.min_insync_replicas,
        )
        log.info(
            "worker %s: cluster %r, %d partitions, state in %s",
            leader_id,
            s.cluster,
            partitions,
            s.state_dir,
        )
        lease = Lease.for_session(s.session_timeout_ms, heartbeat_interval_ms(s.session_timeout_ms))
        crossing = LoopCrossing(asyncio.get_running_loop())
        writer = LogWriter(s.bootstrap, s.names, s.produce_timeout_s)
        queries = QueryAnswerer(writer)
        recovery = Recovery(s, metrics, writer.append)
        clusters = KafkaClusters.from_env(s.bootstrap, s.kafka_clusters)
        publisher = Publisher(s.bootstrap, s.names, s.produce_timeout_s, clusters, lease=lease)
        directory = await asyncio.to_thread(ServiceDirectory, s.bootstrap, s.names.registry_topic)
        remote = RemoteInvoker(
            directory, metrics.remote_exchanges.inc, s.suspend_after_s, streams=s.remote_streams
        )
        invoker = Invoker(
            endpoint,
            writer,
            metrics,
            s.suspend_after_s,
            # The runtime is made next, with the invoker's port; it exists before any restart.
            restart=lambda partition, invocation_id: runtime.restart(partition, invocation_id),
            ack_timeout_s=s.ack_timeout_s,
            publisher=publisher,
            remote=remote,
            lease=lease,
        )
        processors: dict[int, PartitionProcessor] = {}
        runtime = PartitionRuntime(
            writer,
            writer,
            LoopPort(crossing, processors, invoker),
            WallClock(),
            leader_id,
            partitions,
            metrics,
            lease,
            LeaderTiming(
                claim_retry_s=s.session_timeout_ms / 1000,
                redelivery_interval_s=s.redelivery_interval_s,
                purge_interval_s=s.purge_interval_s,
                retention_s=s.retention_s,
            ),
            recovery=recovery,
            queries=queries,
            fence=publisher,
        )
        runtime.processors = processors
        metrics.watch(processors)
        return cls(
            endpoint,
            settings,
            leader_id,
            partitions,
            metrics,
            lease,
            crossing,
            writer,
            queries,
            recovery,
            publisher,
            directory,
            remote,
            runtime,
            invoker,
        )

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Runs until ``stop`` is set (or forever), then leaves the group cleanly."""
        watchdog = asyncio.get_running_loop().create_task(self.invoker.watch_acks())
        if self.settings.metrics_port:
            self.metrics.serve(self.settings.metrics_port, problem=self.problem)
        s = self.settings
        await asyncio.to_thread(
            publish_services, s.bootstrap, s.names.registry_topic, self.endpoint, self.leader_id
        )
        thread = threading.Thread(target=self._consume, name="processor", daemon=True)
        thread.start()
        try:
            if stop is None:
                stop = asyncio.Event()
            while not stop.is_set() and thread.is_alive():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
        finally:
            if thread.is_alive():
                await self._drain()
            watchdog.cancel()
            self._stop.set()
            await asyncio.to_thread(thread.join, 30)
            await self.invoker.shutdown()
            await self.remote.close()
            await asyncio.to_thread(self.directory.close)
            await asyncio.to_thread(self.queries.close)
            self.recovery.close()
            self.publisher.close()
            self.writer.close()
            log.info("worker %s stopped", self.leader_id)

    def _consume(self) -> None:
        GroupMember(
            self.settings,
            self.leader_id,
            self.runtime,
            self.recovery,
            self.queries,
            self.metrics,
            self.lease,
            LeaseKeeper(self.lease),
            self.crossing,
            self._stop,
        ).run()

    def problem(self) -> str | None:
        """Why this worker is not ready, naming each blocked partition (None: it is)."""
        procs = sorted(list(self.runtime.processors.items()))
        notes = [(p, proc.blocked_note()) for p, proc in procs]
        return "; ".join(f"partition {p} {note}" for p, note in notes if note) or None

    async def _drain(self) -> None:
        """Lets handlers in a step finish it before the partitions go (see Invoker.drain):
        the processor thread still runs, so their proposals are applied and acknowledged."""
        timeout_s = self.settings.drain_timeout_s
        if timeout_s <= 0:
            return
        began = time.monotonic()
        finished, left = await self.invoker.drain(timeout_s)
        log.info(
            "drained in %.2fs: %d handlers stopped at their end or next wait, %d still in a"
            " step are left to the next leader; handing the partitions over",
            time.monotonic() - began,
            finished,
            left,
        )


class LoopPort:
    """The runtime's way to the invoker: across to its event loop, checked there against the
    partitions this worker still leads (a call queued before it stepped down is dropped)."""

    def __init__(
        self,
        crossing: LoopCrossing,
        processors: dict[int, PartitionProcessor],
        invoker: Invoker,
    ) -> None:
        self._call = crossing.call
        self._processors = processors
        self._invoker = invoker

    def start(self, partition: int, epoch: int, start: StartInvocation) -> None:
        self._call(self._start, partition, epoch, start)

    def ack(self, partition: int, action: AckEntry) -> None:
        self._call(self._ack, partition, action)

    def ended(self, invocation_id: str) -> None:
        self._call(self._invoker.ended, invocation_id)

    def release(self, partition: int) -> None:
        self._call(self._invoker.release_partition, partition)

    # On the loop:

    def _start(self, partition: int, epoch: int, start: StartInvocation) -> None:
        proc = self._processors.get(partition)
        if proc is not None and proc.is_leader:
            self._invoker.start(partition, epoch, start)  # checks the lease itself

    def _ack(self, partition: int, action: AckEntry) -> None:
        proc = self._processors.get(partition)
        if proc is not None and proc.is_leader:
            # Else queued before this worker stepped down: the next leader acknowledges.
            self._invoker.ack(partition, action)  # checks the lease itself
