"""Worker: a member of the cluster's consumer group that runs the partitions it is given.

The Kafka adapter of the partition runtime (partitions/runtime/): the consumer, its rebalance
callbacks, the stores and the lease's renewals run on one thread, which hands each partition's
records to the runtime; handlers run on the asyncio loop of the calling thread, and the
runtime's calls into the invoker cross over to it (partitions/kafka/crossing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import cast

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from perdure.engine import faults
from perdure.engine.client_logs import CLIENT_LOGGER
from perdure.engine.cluster import CONSUMER_QUEUE_KBYTES
from perdure.engine.kafka_clusters import KafkaClusters
from perdure.engine.kafka_settings import client_settings, heartbeat_interval_ms
from perdure.engine.records import AckEntry, StartInvocation
from perdure.partitions.config import WorkerSettings
from perdure.partitions.handlers.invoker import Invoker
from perdure.partitions.kafka.crossing import LoopCrossing
from perdure.partitions.kafka.publisher import Publisher
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
from perdure.partitions.storage.standby import Standbys
from perdure.partitions.storage.store import StoreSnapshot, configure_memory, memory_in_use
from perdure.sdk import Endpoint

log = logging.getLogger("perdure.worker")

_OUT_OF_RANGE = (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE)
"""What the consumer says when the log no longer holds the offset a store needs next."""

CENSUS_INTERVAL_S = 5.0
"""How often the in-flight gauges are counted (engine/census.py, on the query thread)."""


class Worker:
    """Runs ``endpoint``'s handlers for the partitions the group assigns to this process."""

    def __init__(self, endpoint: Endpoint, settings: WorkerSettings) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.names = settings.names
        self.leader_id = f"{settings.worker_name}-{uuid.uuid4().hex[:8]}"
        heap.limit_arenas(settings.malloc_arenas)
        configure_memory(settings.store_cache_bytes, settings.store_memtable_bytes)
        self.metrics = WorkerMetrics()
        memory = self.metrics.store_memory_bytes
        memory.labels("block_cache").set_function(lambda: memory_in_use()[0])
        memory.labels("pinned").set_function(lambda: memory_in_use()[1])
        self._consumer: Consumer | None = None
        self._spare: Consumer | None = None
        """A consumer outside the group, never polled: asks for offsets when the group
        consumer's metadata is stale (see _log_range)."""
        self.processors: dict[int, PartitionProcessor] = {}
        self.metrics.watch(self.processors)
        self._lag_measured = 0.0
        self._counted_at = 0.0
        self.crossing = LoopCrossing()
        self.runtime: PartitionRuntime | None = None
        self._stop = threading.Event()
        self.writer: LogWriter | None = None
        self.invoker: Invoker | None = None
        self.directory: ServiceDirectory | None = None
        self.recovery: Recovery | None = None
        self.standbys: Standbys | None = None
        self.publisher: Publisher | None = None
        self.queries: QueryAnswerer | None = None
        self.partition_count = settings.partitions
        self._claims = itertools.count(1)
        self.lease = Lease.for_session(
            settings.session_timeout_ms, heartbeat_interval_ms(settings.session_timeout_ms)
        )
        """Whether the group still counts this worker in (partitions/lease.py)."""
        self.lease_keeper = LeaseKeeper(self.lease)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Runs until ``stop`` is set (or forever), then leaves the group cleanly."""
        s = self.settings
        partitions = await asyncio.to_thread(
            ensure_topics,
            s.bootstrap,
            self.names,
            s.partitions,
            s.connect_timeout_s,
            s.segment_bytes,
            s.replication_factor,
            s.min_insync_replicas,
        )
        self.partition_count = partitions
        log.info(
            "worker %s: cluster %r, %d partitions, state in %s",
            self.leader_id,
            s.cluster,
            partitions,
            s.state_dir,
        )
        self.crossing.loop = asyncio.get_running_loop()
        self.writer = LogWriter(s.bootstrap, self.names, s.produce_timeout_s)
        self.queries = QueryAnswerer(self.writer)
        self.recovery = Recovery(s, self.metrics, self.writer.append)
        clusters = KafkaClusters.from_env(s.bootstrap, s.kafka_clusters)
        self.publisher = Publisher(
            s.bootstrap, self.names, s.produce_timeout_s, clusters, lease=self.lease
        )
        self.directory = await asyncio.to_thread(
            ServiceDirectory, s.bootstrap, self.names.registry_topic
        )
        remote = RemoteInvoker(
            self.directory,
            self.metrics.remote_exchanges.inc,
            s.suspend_after_s,
            streams=s.remote_streams,
        )
        self.runtime = PartitionRuntime(
            self.writer,
            self.writer,
            _LoopPort(self),
            WallClock(),
            self.leader_id,
            partitions,
            self.metrics,
            self.lease,
            LeaderTiming(
                claim_retry_s=s.session_timeout_ms / 1000,
                redelivery_interval_s=s.redelivery_interval_s,
                purge_interval_s=s.purge_interval_s,
                retention_s=s.retention_s,
            ),
            recovery=self.recovery,
            queries=self.queries,
            fence=self.publisher,
        )
        self.runtime.processors = self.processors
        self.invoker = Invoker(
            self.endpoint,
            self.writer,
            self.metrics,
            s.suspend_after_s,
            restart=self.runtime.restart,
            ack_timeout_s=s.ack_timeout_s,
            publisher=self.publisher,
            remote=remote,
            lease=self.lease,
        )
        watchdog = asyncio.get_running_loop().create_task(self.invoker.watch_acks())
        if s.metrics_port:
            self.metrics.serve(s.metrics_port, problem=self.problem)
        await asyncio.to_thread(self._publish_services)
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
            await remote.close()
            await asyncio.to_thread(self.directory.close)
            await asyncio.to_thread(self.queries.close)
            self.recovery.close()
            self.publisher.close()
            self.writer.close()
            log.info("worker %s stopped", self.leader_id)

    def problem(self) -> str | None:
        """Why this worker is not ready, naming each blocked partition (None: it is)."""
        notes = [(p, proc.blocked_note()) for p, proc in sorted(list(self.processors.items()))]
        return "; ".join(f"partition {p} {note}" for p, note in notes if note) or None

    async def _drain(self) -> None:
        """Lets handlers in a step finish it before the partitions go (see Invoker.drain):
        the processor thread still runs, so their proposals are applied and acknowledged."""
        assert self.invoker is not None
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

    # -- registry -------------------------------------------------------------------------------

    def _publish_services(self) -> None:
        producer = Producer(client_settings(self.settings.bootstrap, acks="all"))
        failed: list[str] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failed.append(err.str())

        for entry in self.endpoint.manifest():
            producer.produce(
                self.names.registry_topic,
                key=entry["name"].encode(),
                value=json.dumps({**entry, "worker": self.leader_id}).encode(),
                on_delivery=delivered,
            )
        # Kafka may go down between the topic check and here (a cluster restart): wait for
        # it as long as the producer keeps the records (message.timeout.ms, 5 minutes).
        began = time.monotonic()
        while producer.flush(15) and not failed:
            log.warning(
                "publishing the service registry: Kafka has not taken it for %.0fs; waiting",
                time.monotonic() - began,
            )
        if failed:
            raise RuntimeError(f"could not publish the service registry: {failed[0]}")
        names = ", ".join(self.endpoint.services) or "none"
        log.info("published services: %s", names)

    # -- the processor thread -------------------------------------------------------------------

    def _consume(self) -> None:
        s = self.settings
        consumer = Consumer(
            {
                **client_settings(s.bootstrap),
                "group.id": self.names.worker_group,
                "logger": CLIENT_LOGGER,
                "client.id": self.leader_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "error",
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": s.session_timeout_ms,
                "heartbeat.interval.ms": heartbeat_interval_ms(s.session_timeout_ms),
                "fetch.wait.max.ms": 100,
                "enable.partition.eof": False,
                "queued.max.messages.kbytes": CONSUMER_QUEUE_KBYTES,
                "on_commit": self.lease_keeper.answered,
            }
        )
        self._consumer = consumer
        self._spare = Consumer(
            {
                **client_settings(s.bootstrap),
                "group.id": f"{self.names.worker_group}.offsets",
                "enable.auto.commit": False,
                "log.connection.close": False,
            }
        )
        if s.standby_replicas > 0:
            assert self.recovery is not None
            self.standbys = Standbys(
                s.bootstrap,
                self.names.worker_group,
                self.names.log_topic,
                s.standby_replicas,
                self.recovery,
                self._store_path,
                self.metrics,
            )
        consumer.subscribe(
            [self.names.log_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            while not self._stop.is_set():
                assert self.runtime is not None
                messages = _next_batch(consumer, self.runtime.poll_timeout())
                by_partition: dict[int, list[Message]] = {}
                for msg in messages:
                    err = msg.error()
                    if err is not None:
                        if err.code() in _OUT_OF_RANGE and msg.partition() is not None:
                            self._trimmed_past(msg.partition() or 0)
                        elif err.code() != KafkaError._PARTITION_EOF:
                            log.warning("consumer: %s", err)
                        continue
                    by_partition.setdefault(msg.partition() or 0, []).append(msg)
                # Before anything fetched or queued is acted on: a worker that was stopped
                # past its session finds its lease lapsed here and leads nothing any more.
                self.runtime.check_lease()
                self.crossing.gather()
                try:
                    for partition, batch in by_partition.items():
                        proc = self.processors.get(partition)
                        if proc is not None:
                            self.runtime.apply(proc, batch)
                            if proc.blocked is not None:
                                self._block(proc)
                    self._housekeeping()
                finally:
                    self.crossing.flush()
                if self.standbys is not None:
                    self.standbys.poll(consumer.memberid() or "", set(self.processors))
        except Exception:
            log.exception("the processor loop failed; stopping the worker")
            raise
        finally:
            for partition in list(self.processors):
                self._drop(partition, "worker stopping")
            if self.standbys is not None:
                self.standbys.close()
            consumer.close()
            self._spare.close()

    def _block(self, proc: PartitionProcessor) -> None:
        """Stops fetching a partition that cannot go on (it stays assigned, and says so)."""
        assert self._consumer is not None
        with contextlib.suppress(KafkaException):
            self._consumer.pause([TopicPartition(self.names.log_topic, proc.partition)])
        self.metrics.partitions_blocked.set(
            sum(1 for p in self.processors.values() if p.blocked is not None)
        )

    def _housekeeping(self) -> None:
        """The runtime's duties, then the Kafka adapter's: the lease's renewal, lag, census."""
        assert self.runtime is not None
        self.runtime.housekeeping()
        now = time.monotonic()
        if self._consumer is not None and self.lease_keeper.due(now):
            offsets = {p: proc.next_offset for p, proc in self.processors.items()}
            notes = {
                p: note for p, proc in self.processors.items() if (note := proc.blocked_note())
            }
            self.lease_keeper.renew(self._consumer, self.names.log_topic, offsets, now, notes)
        if self._consumer is not None and now - self._lag_measured >= 1.0:
            self._lag_measured = now
            self.metrics.measure_lag(self._consumer, self.processors, self.names.log_topic)
        if self.queries is not None and now - self._counted_at >= CENSUS_INTERVAL_S:
            self._counted_at = now
            for proc in self.processors.values():
                if proc.is_leader:
                    snapshot = cast(StoreSnapshot, proc.store.snapshot())  # RocksDB's here
                    self.queries.count(proc.partition, snapshot, self.metrics.counted)

    # -- rebalance callbacks (run inside consume, on the processor thread) ----------------------

    def _on_assign(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        log.info("assigned partitions %s", sorted(tp.partition for tp in parts))
        procs = [self._open_partition(consumer, tp.partition, member=True) for tp in parts]
        faults.reach("stores-opened")  # the stores opened, their reads not started
        consumer.incremental_assign(
            [TopicPartition(self.names.log_topic, p.partition, p.next_offset) for p in procs]
        )
        for proc in procs:
            if proc.blocked is not None:
                self._block(proc)
        self.lease_keeper.renew_soon()  # a lease before the first claim, without waiting
        self.metrics.partitions_owned.set(len(self.processors))

    def _open_partition(
        self, consumer: Consumer, partition: int, member: bool
    ) -> PartitionProcessor:
        """Opens (restores, or takes over the standby copy of) a partition's store.

        ``member``: the group coordinator just assigned it (a rebalance callback); False when
        it is reopened after a trim (see PartitionRuntime.open_fence for what that changes).
        """
        assert self.recovery is not None
        tp = TopicPartition(self.names.log_topic, partition)
        low, high = _log_range(consumer, tp, self._stop, self._spare)
        warm = self.standbys.take(partition) if self.standbys is not None else None
        assert self.runtime is not None
        self.runtime.open_fence(partition, member)  # in the background, while the store opens
        opened = self.recovery.open(partition, self._store_path(partition), low, high, warm)
        claim = f"{self.leader_id}/{next(self._claims)}"
        proc = PartitionProcessor(partition, opened.store, claim, high)
        self.processors[partition] = proc
        if opened.blocked is not None:
            proc.blocked = (proc.next_offset, opened.blocked)
            log.error("partition %d BLOCKED: %s", partition, opened.blocked)
        elif proc.next_offset < high:
            log.info(
                "partition %d assigned: replaying offsets %d..%d",
                partition,
                proc.next_offset,
                high - 1,
            )
        else:
            log.info("partition %d assigned: store up to date (offset %d)", partition, high)
        return proc

    def _trimmed_past(self, partition: int) -> None:
        """The log was trimmed past where the partition's store is (the previous owner trimmed
        after this worker opened it): open it again, from the backup that trim followed.

        The consumer never skips ahead by itself (``auto.offset.reset=error``): a skipped
        record would be a record never applied.
        """
        if partition not in self.processors:
            return
        self._drop(partition, "is behind the log's start: restoring it from its backup")
        assert self._consumer is not None
        proc = self._open_partition(self._consumer, partition, member=False)
        # A seek fails on a partition in the error state: assign it again at the new offset.
        self._consumer.incremental_unassign([TopicPartition(self.names.log_topic, partition)])
        self._consumer.incremental_assign(
            [TopicPartition(self.names.log_topic, partition, proc.next_offset)]
        )
        if proc.blocked is not None:
            self._block(proc)

    def _store_path(self, partition: int) -> Path:
        return Path(self.settings.state_dir) / f"partition-{partition}"

    def _on_revoke(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        for tp in parts:
            self._drop(tp.partition, "revoked")
        consumer.incremental_unassign(parts)
        self.metrics.partitions_owned.set(len(self.processors))

    def _on_lost(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        self.lease.lapse()  # out of the group: nothing it heard before counts
        for tp in parts:
            self._drop(tp.partition, "lost (this worker was out of the group)")
        self.metrics.partitions_owned.set(len(self.processors))

    def _drop(self, partition: int, why: str) -> None:
        assert self.runtime is not None
        proc = self.runtime.drop(partition)  # its handlers and its publish producer stop
        if proc is None:
            return
        if self.recovery is not None:
            self.recovery.release(partition)
        if self.queries is not None:
            self.queries.drain(partition)
        proc.close()
        self.metrics.partitions_blocked.set(
            sum(1 for p in self.processors.values() if p.blocked is not None)
        )
        log.info("partition %d %s", partition, why)

    # -- crossing to the event loop -------------------------------------------------------------

    def _start(self, partition: int, epoch: int, start: StartInvocation) -> None:
        assert self.invoker is not None
        proc = self.processors.get(partition)
        if proc is None or not proc.is_leader:
            return
        self.invoker.start(partition, epoch, start)  # checks the lease itself

    def _ack(self, partition: int, action: AckEntry) -> None:
        assert self.invoker is not None
        proc = self.processors.get(partition)
        if proc is None or not proc.is_leader:
            return  # queued before this worker stepped down: the next leader acknowledges
        self.invoker.ack(partition, action)  # checks the lease itself

    def _ended(self, invocation_id: str) -> None:
        assert self.invoker is not None
        self.invoker.ended(invocation_id)

    def _release(self, partition: int) -> None:
        assert self.invoker is not None
        self.invoker.release_partition(partition)


class _LoopPort:
    """The runtime's way to the invoker: across to its event loop, checked there against the
    partitions this worker still leads (a call queued before it stepped down is dropped)."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._call = worker.crossing.call

    def start(self, partition: int, epoch: int, start: StartInvocation) -> None:
        self._call(self._worker._start, partition, epoch, start)

    def ack(self, partition: int, action: AckEntry) -> None:
        self._call(self._worker._ack, partition, action)

    def ended(self, invocation_id: str) -> None:
        self._call(self._worker._ended, invocation_id)

    def release(self, partition: int) -> None:
        self._call(self._worker._release, partition)


def _next_batch(consumer: Consumer, timeout: float) -> list[Message]:
    """Whatever is fetched already, or else the first record within ``timeout``.

    ``consume(n, timeout)`` waits for the whole timeout unless ``n`` records arrive, which
    would put the timeout into every step's latency; ``poll`` returns on the first record.
    """
    batch = consumer.consume(num_messages=1000, timeout=0)
    if batch:
        return batch
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(num_messages=999, timeout=0)]


def _log_range(
    consumer: Consumer,
    tp: TopicPartition,
    stop: threading.Event | None = None,
    spare: Consumer | None = None,
) -> tuple[int, int]:
    """The start and end offsets of a partition, waiting out a new topic's leader election
    and brokers that are down (a whole-cluster restart): for as long as it takes, or until
    ``stop``. A worker that gave up here would stop every partition it runs."""
    began = last_warned = time.monotonic()
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            return int(low), int(high)
        except KafkaException as err:
            if stop is not None and stop.is_set():
                raise
            # "Unknown partition" can mean the group consumer's metadata of the topic is stale
            # (read while brokers restarted) until librdkafka's periodic refresh, five minutes
            # on, while this rebalance callback holds up every member of the group (seen in a
            # chaos run). Its metadata cannot be renewed from inside its own callback (a call
            # on the same handle ends the poll's call state: confluent-kafka aborts), so a
            # second client of its own asks, with metadata renewed first.
            if spare is not None:
                with contextlib.suppress(KafkaException):
                    spare.list_topics(tp.topic, timeout=2)
                    low, high = spare.get_watermark_offsets(tp, timeout=5, cached=False)
                    return int(low), int(high)
            now = time.monotonic()
            if now - last_warned >= 15:
                last_warned = now
                log.warning(
                    "partition %d: no offsets from Kafka for %.0fs (%s); still asking",
                    tp.partition,
                    now - began,
                    err.args[0].str() if err.args else err,
                )
            time.sleep(0.2)
