"""GroupMember: the worker's processor thread, a member of the cluster's consumer group.

Made on that thread, whole: its consumer, a spare client for offsets and the standby copies.
It hands each partition's records to the partition runtime, opens and drops partitions in the
group's rebalance callbacks, reopens a partition whose log was trimmed past its store, and
renews the worker's lease with offset commits. Calls into the invoker cross to the event loop
(partitions/kafka/crossing.py).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from pathlib import Path
from typing import cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from perdure.partitions.config import WorkerSettings
from perdure.partitions.kafka.crossing import LoopCrossing
from perdure.partitions.lease import Lease, LeaseKeeper
from perdure.partitions.metrics import WorkerMetrics
from perdure.partitions.queries import QueryAnswerer
from perdure.partitions.runtime.leader import PartitionRuntime
from perdure.partitions.runtime.processor import PartitionProcessor
from perdure.partitions.storage.recovery import Recovery
from perdure.partitions.storage.standby import Standbys
from perdure.partitions.storage.store import StoreSnapshot
from perdure.process import faults
from perdure.process.client_logs import CLIENT_LOGGER
from perdure.process.kafka_settings import (
    CONSUMER_QUEUE_KBYTES,
    client_settings,
    heartbeat_interval_ms,
)

log = logging.getLogger("perdure.worker")

_OUT_OF_RANGE = (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE)
"""What the consumer says when the log no longer holds the offset a store needs next."""

CENSUS_INTERVAL_S = 5.0
"""How often the in-flight gauges are counted (engine/census.py, on the query thread)."""


class GroupMember:
    """The processor thread's state; :meth:`run` on that thread until ``stop``."""

    def __init__(
        self,
        settings: WorkerSettings,
        leader_id: str,
        runtime: PartitionRuntime,
        recovery: Recovery,
        queries: QueryAnswerer,
        metrics: WorkerMetrics,
        lease: Lease,
        lease_keeper: LeaseKeeper,
        crossing: LoopCrossing,
        stop: threading.Event,
    ) -> None:
        s = self.settings = settings
        self.names = settings.names
        self.leader_id = leader_id
        self.runtime = runtime
        self.processors = runtime.processors
        self.recovery = recovery
        self.queries = queries
        self.metrics = metrics
        self.lease = lease
        self.lease_keeper = lease_keeper
        self.crossing = crossing
        self._stop = stop
        self._claims = itertools.count(1)
        self._lag_measured = 0.0
        self._counted_at = 0.0
        self.consumer = Consumer(
            {
                **client_settings(s.bootstrap),
                "group.id": self.names.worker_group,
                "logger": CLIENT_LOGGER,
                "client.id": leader_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "error",
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": s.session_timeout_ms,
                "heartbeat.interval.ms": heartbeat_interval_ms(s.session_timeout_ms),
                "fetch.wait.max.ms": 100,
                "enable.partition.eof": False,
                "queued.max.messages.kbytes": CONSUMER_QUEUE_KBYTES,
                "on_commit": lease_keeper.answered,
            }
        )
        self.spare = Consumer(
            {
                **client_settings(s.bootstrap),
                "group.id": f"{self.names.worker_group}.offsets",
                "enable.auto.commit": False,
                "log.connection.close": False,
            }
        )
        """A consumer outside the group, never polled: asks for offsets when the group
        consumer's metadata is stale (see log_range)."""
        self.standbys = (
            Standbys(
                s.bootstrap,
                self.names.worker_group,
                self.names.log_topic,
                s.standby_replicas,
                recovery,
                self._store_path,
                metrics,
            )
            if s.standby_replicas > 0
            else None
        )

    def run(self) -> None:
        consumer = self.consumer
        consumer.subscribe(
            [self.names.log_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            while not self._stop.is_set():
                messages = next_batch(consumer, self.runtime.poll_timeout())
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
            self.spare.close()

    def _block(self, proc: PartitionProcessor) -> None:
        """Stops fetching a partition that cannot go on (it stays assigned, and says so)."""
        with contextlib.suppress(KafkaException):
            self.consumer.pause([TopicPartition(self.names.log_topic, proc.partition)])
        self.metrics.partitions_blocked.set(
            sum(1 for p in self.processors.values() if p.blocked is not None)
        )

    def _housekeeping(self) -> None:
        """The runtime's duties, then the Kafka adapter's: the lease's renewal, lag, census."""
        self.runtime.housekeeping()
        now = time.monotonic()
        if self.lease_keeper.due(now):
            offsets = {p: proc.next_offset for p, proc in self.processors.items()}
            notes = {
                p: note for p, proc in self.processors.items() if (note := proc.blocked_note())
            }
            self.lease_keeper.renew(self.consumer, self.names.log_topic, offsets, now, notes)
        if now - self._lag_measured >= 1.0:
            self._lag_measured = now
            self.metrics.measure_lag(self.consumer, self.processors, self.names.log_topic)
        if now - self._counted_at >= CENSUS_INTERVAL_S:
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
        tp = TopicPartition(self.names.log_topic, partition)
        low, high = log_range(consumer, tp, self._stop, self.spare)
        warm = self.standbys.take(partition) if self.standbys is not None else None
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
        proc = self._open_partition(self.consumer, partition, member=False)
        # A seek fails on a partition in the error state: assign it again at the new offset.
        self.consumer.incremental_unassign([TopicPartition(self.names.log_topic, partition)])
        self.consumer.incremental_assign(
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
        proc = self.runtime.drop(partition)  # its handlers and its publish producer stop
        if proc is None:
            return
        self.recovery.release(partition)
        self.queries.drain(partition)
        proc.close()
        self.metrics.partitions_blocked.set(
            sum(1 for p in self.processors.values() if p.blocked is not None)
        )
        log.info("partition %d %s", partition, why)


def next_batch(consumer: Consumer, timeout: float) -> list[Message]:
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


def log_range(
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
