"""Standby replicas: warm copies of partitions this worker does not lead (Kafka Streams' idea).

With ``--standby-replicas N`` every worker works out, from the consumer group's assignment, which
partitions it keeps a copy of: each partition's copies go to the ``N`` members that follow its
owner in the group's members sorted by member id. A copy is a processor that folds the partition's
log into the store at the usual path without ever claiming leadership, so when the group gives
this worker the partition, its store is already at (or a few records behind) the log's end and
the takeover replays only those records.

A copy tails the log rather than the backups topic: the store is a deterministic fold of the log
(DESIGN.md invariant 1), and the log is more current than any backup. A copy that falls behind a
trim is restored from the newest backup, like any store.

The group's assignor does not know about copies: with more than ``N + 1`` workers, a failed-over
partition may go to a worker without a copy, which then restores from the backup.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from perdure.partitions.metrics import WorkerMetrics
from perdure.partitions.runtime.processor import PartitionProcessor
from perdure.partitions.storage.recovery import Recovery
from perdure.partitions.storage.store import PartitionStore
from perdure.process.client_logs import CLIENT_LOGGER
from perdure.process.kafka_settings import CONSUMER_QUEUE_KBYTES, client_settings

log = logging.getLogger("perdure.standby")

_PLAN_EVERY_S = 3.0


def plan(owners: dict[int, str], members: list[str], me: str, replicas: int) -> set[int]:
    """The partitions ``me`` keeps copies of.

    Args:
        owners: partition -> member id of its owner.
        members: every member id of the group.
        me: this worker's member id.
        replicas: copies per partition.
    """
    ring = sorted(members)
    if me not in ring or replicas <= 0:
        return set()
    mine = set()
    for partition, owner in owners.items():
        if owner == me or owner not in ring:
            continue
        start = ring.index(owner)
        followers = [ring[(start + k) % len(ring)] for k in range(1, len(ring))]
        if me in followers[:replicas]:
            mine.add(partition)
    return mine


class Standbys:
    """The copies one worker keeps, fed by a consumer of their own (no group).

    Everything runs on the worker's processor thread: :meth:`poll` between its batches.

    Args:
        bootstrap: Kafka's address.
        group: the workers' consumer group (whose assignment decides the copies).
        topic: the log topic.
        replicas: copies per partition.
        recovery: opens (and restores) stores.
        store_path: partition -> its store's folder.
        metrics: the worker's metrics.
    """

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topic: str,
        replicas: int,
        recovery: Recovery,
        store_path: Callable[[int], Path],
        metrics: WorkerMetrics,
    ) -> None:
        self.group = group
        self.topic = topic
        self.replicas = replicas
        self.recovery = recovery
        self.store_path = store_path
        self.metrics = metrics
        self.copies: dict[int, PartitionProcessor] = {}
        self._consumer = Consumer(
            {
                **client_settings(bootstrap),
                "group.id": f"{group}.standby",
                "logger": CLIENT_LOGGER,
                "enable.auto.commit": False,
                "auto.offset.reset": "error",  # a copy behind a trim is restored, not reset
                "fetch.wait.max.ms": 100,
                "queued.max.messages.kbytes": CONSUMER_QUEUE_KBYTES,
            }
        )
        self._admin = AdminClient(client_settings(bootstrap))
        self._described: Future[Any] | None = None
        self._last_plan = 0.0

    def poll(self, me: str, owned: set[int]) -> None:
        """Applies what the copies' consumer fetched; every few seconds, re-plans the copies."""
        now = time.monotonic()
        if now - self._last_plan >= _PLAN_EVERY_S and self._described is None:
            self._last_plan = now
            self._described = self._admin.describe_consumer_groups([self.group])[self.group]
        if self._described is not None and self._described.done():
            described, self._described = self._described, None
            try:
                self._replan(described.result(), me, owned)
            except Exception as err:  # the group is rebalancing, the broker is away: next time
                log.debug("standby plan skipped: %s", err)
        if not self.copies:
            return
        by_partition: dict[int, list[Message]] = {}
        for msg in self._consumer.consume(1000, 0):
            error = msg.error()
            if error is not None:
                self._on_error(msg, error)
                continue
            by_partition.setdefault(msg.partition() or 0, []).append(msg)
        for partition, batch in by_partition.items():
            copy = self.copies.get(partition)
            if copy is not None:
                copy.apply(batch)  # actions are dropped: a copy never leads

    def _replan(self, description: Any, me: str, owned: set[int]) -> None:
        owners: dict[int, str] = {}
        members = []
        for member in description.members:
            members.append(member.member_id)
            assignment = getattr(member, "assignment", None)
            for tp in getattr(assignment, "topic_partitions", None) or []:
                if tp.topic == self.topic:
                    owners[tp.partition] = member.member_id
        wanted = plan(owners, members, me, self.replicas) - owned
        for partition in set(self.copies) - wanted:
            # A partition whose owner left (died, say) keeps its copy: that is when the copy
            # is about to be needed. Only one owned by a live member that does not want us
            # as its standby is dropped.
            if owners.get(partition) in members or partition in owned:
                self.drop(partition)
        for partition in sorted(wanted - set(self.copies)):
            self._add(partition)
        self.metrics.standby_partitions.set(len(self.copies))

    def _add(self, partition: int) -> None:
        tp = TopicPartition(self.topic, partition)
        low, high = self._consumer.get_watermark_offsets(tp, timeout=10, cached=False)
        opened = self.recovery.open(partition, self.store_path(partition), low, high)
        if opened.blocked is not None:
            opened.store.close()
            log.warning("partition %d: no standby copy: %s", partition, opened.blocked)
            return
        copy = PartitionProcessor(partition, opened.store, "standby", high)
        self.copies[partition] = copy
        self._consumer.incremental_assign([TopicPartition(self.topic, partition, copy.next_offset)])
        log.info("partition %d: keeping a standby copy from offset %d", partition, copy.next_offset)

    def _on_error(self, msg: Message, err: KafkaError) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            return
        partition = msg.partition()
        if partition is not None and partition in self.copies:
            # Most likely the log was trimmed past the copy: restore it from the backup.
            log.info("partition %d: standby copy restarts (%s)", partition, err)
            self.drop(partition)
            self._add(partition)
        else:
            log.warning("standby consumer: %s", err)

    def take(self, partition: int) -> PartitionStore | None:
        """Hands the copy's store over to an active assignment of ``partition`` (or None)."""
        copy = self.copies.pop(partition, None)
        if copy is None:
            return None
        self._consumer.incremental_unassign([TopicPartition(self.topic, partition)])
        self.metrics.standby_partitions.set(len(self.copies))
        log.info(
            "partition %d: taking over the standby copy at offset %d", partition, copy.next_offset
        )
        store = copy.store
        assert isinstance(store, PartitionStore)
        return store

    def drop(self, partition: int) -> None:
        """Stops keeping a copy (its store stays on disk, a head start for later)."""
        copy = self.copies.pop(partition, None)
        if copy is None:
            return
        self._consumer.incremental_unassign([TopicPartition(self.topic, partition)])
        copy.close()
        self.metrics.standby_partitions.set(len(self.copies))

    def close(self) -> None:
        """Closes every copy and the consumer."""
        for partition in list(self.copies):
            self.drop(partition)
        self._consumer.close()
