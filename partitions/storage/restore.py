"""Restorer: brings a partition's store back from its newest usable backup.

A backup is usable when all its chunks are on the backups topic, it was written by this store
format, and the log still holds every record after it (its offset + 1 is not below the log's
start). The newest such backup is loaded into a fresh store beside the old one, which replaces
the old one only when it is complete (a rename), so a worker killed mid-restore leaves the old
store, or none, never half a backup. The processor then replays the log after the backup.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from perdure.engine import keys
from perdure.engine.cluster import ClusterNames
from perdure.partitions.errors import RestoreError
from perdure.partitions.metrics import WorkerMetrics
from perdure.partitions.storage import backup_format, heap
from perdure.partitions.storage.store import PartitionStore
from perdure.process import faults
from perdure.process.client_logs import CLIENT_LOGGER
from perdure.process.kafka_settings import CONSUMER_QUEUE_KBYTES, client_settings

log = logging.getLogger("perdure.restore")

_PROGRESS_EVERY_S = 1.0


@dataclass
class FoundBackup:
    """A complete backup on the backups topic."""

    backup_id: str
    applied_offset: int
    first_offset: int
    chunks: int
    estimated_keys: int


@dataclass
class _Seen:
    applied_offset: int
    store_format: int
    first_offset: int
    estimated_keys: int
    seqs: set[int] = field(default_factory=set)
    last_seq: int | None = None


class Restorer:
    """Finds and loads backups of the cluster's partitions.

    Args:
        bootstrap: Kafka's address.
        names: the cluster's topic names.
        metrics: the worker's metrics.
        timeout_s: how long one read of the backups topic may take.
    """

    def __init__(
        self, bootstrap: str, names: ClusterNames, metrics: WorkerMetrics, timeout_s: float = 120
    ) -> None:
        self.names = names
        self.metrics = metrics
        self.timeout_s = timeout_s
        self._consumer = Consumer(
            {
                **client_settings(bootstrap),
                "group.id": f"{names.name}.restore",
                "logger": CLIENT_LOGGER,
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                # Records trimmed while they are read fail the read (and the restore is tried
                # again) instead of jumping to the end and waiting there.
                "auto.offset.reset": "error",
                "max.partition.fetch.bytes": 4 << 20,
                "fetch.wait.max.ms": 50,
                "queued.max.messages.kbytes": CONSUMER_QUEUE_KBYTES,
            }
        )

    def find(self, partition: int, log_start: int) -> FoundBackup | None:
        """The newest complete backup of ``partition`` that the log (from ``log_start``)
        can continue, or None."""
        topic = self.names.backups_topic
        tp = TopicPartition(topic, partition)
        low, high = self._consumer.get_watermark_offsets(tp, timeout=10, cached=False)
        if high <= low:
            return None
        seen: dict[str, _Seen] = {}
        for msg in self._read(partition, low, high):
            info = backup_format.read_chunk_info(msg.headers())
            if info is None:
                continue
            s = seen.setdefault(
                info.backup_id,
                _Seen(
                    info.applied_offset, info.store_format, msg.offset() or 0, info.estimated_keys
                ),
            )
            s.seqs.add(info.seq)
            if info.last:
                s.last_seq = info.seq
        usable = [
            FoundBackup(bid, s.applied_offset, s.first_offset, len(s.seqs), s.estimated_keys)
            for bid, s in seen.items()
            if s.last_seq is not None
            and s.seqs == set(range(s.last_seq + 1))
            and s.store_format == keys.STORE_FORMAT_VERSION
            and s.applied_offset + 1 >= log_start
        ]
        return max(usable, key=lambda b: b.applied_offset, default=None)

    def restore(self, partition: int, path: Path, backup: FoundBackup) -> PartitionStore:
        """Loads ``backup`` into a new store at ``path`` (replacing what is there)."""
        started = time.monotonic()
        building = path.with_name(path.name + ".restoring")
        PartitionStore.destroy(building)
        store = PartitionStore(building)
        loaded = chunks = 0
        said = time.monotonic()
        log.info(
            "partition %d: restoring backup %s of offset %d (~%d keys, %d chunks)",
            partition,
            backup.backup_id,
            backup.applied_offset,
            backup.estimated_keys,
            backup.chunks,
        )
        try:
            for msg in self._read(partition, backup.first_offset, None):
                info = backup_format.read_chunk_info(msg.headers())
                if info is None or info.backup_id != backup.backup_id:
                    continue
                if info.seq != chunks:
                    raise RestoreError(
                        f"backup {backup.backup_id} of partition {partition}: chunk "
                        f"{info.seq} where {chunks} was expected"
                    )
                flat = backup_format.decode_chunk(msg.value() or b"")
                store.load(flat)
                loaded += len(flat) // 2
                chunks += 1
                faults.reach("restore-chunk")  # part of the backup loaded
                now = time.monotonic()
                if now - said >= _PROGRESS_EVERY_S:
                    said = now
                    pct = 100 * chunks // max(backup.chunks, 1)
                    log.info("partition %d: restoring %d keys, %d%%", partition, loaded, pct)
                if info.last:
                    break
            if chunks != backup.chunks:
                raise RestoreError(
                    f"backup {backup.backup_id} of partition {partition} ended after "
                    f"{chunks} of {backup.chunks} chunks (trimmed while it was read?)"
                )
            if store.applied_offset() != backup.applied_offset:
                raise RestoreError(
                    f"backup {backup.backup_id} holds offset {store.applied_offset()}, "
                    f"its chunks said {backup.applied_offset}"
                )
        finally:
            store.close()
        PartitionStore.destroy(path)
        building.rename(path)
        heap.release_free_memory()
        seconds = time.monotonic() - started
        self.metrics.restore_seconds.observe(seconds)
        log.info(
            "partition %d: restored %d keys of offset %d in %.2fs",
            partition,
            loaded,
            backup.applied_offset,
            seconds,
        )
        return PartitionStore(path)

    def _read(self, partition: int, start: int, high: int | None) -> Iterator[Message]:
        """Records of the backups partition from ``start`` (to ``high``, or until stopped)."""
        tp = TopicPartition(self.names.backups_topic, partition, start)
        self._consumer.assign([tp])
        deadline = time.monotonic() + self.timeout_s
        try:
            while high is None or start < high:
                if time.monotonic() > deadline:
                    raise RestoreError(
                        f"reading backups of partition {partition} took over {self.timeout_s}s"
                    )
                # consume(n, timeout) waits out its timeout unless n records come: poll the
                # first, then take what is fetched already.
                first = self._consumer.poll(0.2)
                batch = [] if first is None else [first, *self._consumer.consume(16, 0)]
                for msg in batch:
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise RestoreError(f"reading backups of partition {partition}: {err}")
                    start = (msg.offset() or 0) + 1
                    yield msg
                    if high is not None and start >= high:
                        return
        finally:
            self._consumer.unassign()

    def close(self) -> None:
        """Closes the consumer."""
        self._consumer.close()
