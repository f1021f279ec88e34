"""BackupWriter: copies partition stores to the backups topic, so that a new owner restores the
live state instead of replaying the log's whole history.

How a backup is taken, and why it is safe:

1. On the processor thread, right after a commit, a RocksDB iterator is opened over the store.
   An iterator pins a consistent view, so the copy is the store exactly as of the applied offset,
   although the processor goes on writing while a thread of the backup reads it.
2. The thread writes the store's keys and values, in order, as chunk records to the partition's
   partition of ``<cluster>.backups`` (partitions/storage/backup_format.py), and waits until
   Kafka has them all (acks=all).
3. Only then does it append :class:`~engine.records.BackupTaken` to the log with the leader's
   epoch. The record is fenced: the backup counts only if the log accepts it, and a zombie
   leader's backup never causes a trim (engine/backups.py).
4. When the leader applies the record, it trims the log below the backup (less a margin) and
   the backups topic below the backup's first chunk (:meth:`Trimmer.trim`).

A worker killed at any step leaves either no recorded backup (the chunks are ignored, nothing is
trimmed) or a complete one. When a backup is taken is partitions/storage/backup_policy.py's.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from perdure.engine import keys
from perdure.engine.cluster import MAX_RECORD_BYTES, ClusterNames
from perdure.engine.records import BackupTaken, TrimLog
from perdure.partitions.metrics import WorkerMetrics
from perdure.partitions.storage import backup_format, heap
from perdure.partitions.storage.store import PartitionStore
from perdure.process import faults
from perdure.process.kafka_settings import client_settings, producer_settings

log = logging.getLogger("perdure.backup")

BackupDone = Callable[[int, int, BackupTaken], None]
"""Called from the backup's thread with (partition, epoch, record) once its chunks are durable."""


@dataclass
class _Progress:
    first_offset: int | None = None
    pending: int = 0
    error: str | None = None


class BackupJob(threading.Thread):
    """One backup of one partition, read from an iterator opened at a consistent point."""

    def __init__(
        self,
        writer: BackupWriter,
        partition: int,
        store: PartitionStore,
        applied_offset: int,
        epoch: int,
        on_done: BackupDone,
    ) -> None:
        super().__init__(name=f"backup-{partition}", daemon=True)
        self.writer = writer
        self.partition = partition
        self.applied_offset = applied_offset
        self.epoch = epoch
        self.on_done = on_done
        self.backup_id = uuid.uuid4().hex
        self.estimated_keys = store.estimate_keys()
        self.aborted = threading.Event()
        self.started_at = time.monotonic()
        self._items = store.iterate_all()  # opened here, on the processor thread: the view
        self._progress = _Progress()
        self._lock = threading.Lock()

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("partition %d: backup %s failed", self.partition, self.backup_id)
        finally:
            self._items.close()
            heap.release_free_memory()

    def _run(self) -> None:
        w = self.writer
        flat: list[bytes] = []
        size = count = seq = 0
        total = 0
        for key, value in self._items:
            if self.aborted.is_set():
                return
            flat.append(key)
            flat.append(value)
            size += len(key) + len(value)
            count += 1
            if size >= w.chunk_bytes:
                self._send(seq, flat, last=False)
                total += size
                flat, size, seq = [], 0, seq + 1
                if seq == 1 and faults.armed("backup-chunk"):
                    # Freeze with one chunk on Kafka and the others not yet.
                    self.writer.producer.flush(self.writer.timeout_s)
                    faults.reach("backup-chunk")
        self._send(seq, flat, last=True)
        total += size
        if not self._wait_delivered():
            return
        first = self._progress.first_offset
        assert first is not None
        record = BackupTaken(self.backup_id, self.applied_offset, first, count, total)
        w.metrics.backup_seconds.observe(time.monotonic() - self.started_at)
        w.metrics.backup_bytes.labels(str(self.partition)).set(total)
        log.info(
            "partition %d: backup %s of offset %d written: %d keys, %d bytes, %d chunks in %.2fs",
            self.partition,
            self.backup_id,
            self.applied_offset,
            count,
            total,
            seq + 1,
            time.monotonic() - self.started_at,
        )
        faults.reach("backup-written")  # every chunk on Kafka, the log not told yet
        self.on_done(self.partition, self.epoch, record)

    def _send(self, seq: int, flat: list[bytes], last: bool) -> None:
        info = backup_format.ChunkInfo(
            self.backup_id,
            seq,
            last,
            self.applied_offset,
            keys.STORE_FORMAT_VERSION,
            self.estimated_keys,
        )
        value = backup_format.encode_chunk(flat)

        def delivered(err: KafkaError | None, msg: Message) -> None:
            with self._lock:
                self._progress.pending -= 1
                if err is not None:
                    self._progress.error = str(err)
                elif seq == 0:
                    self._progress.first_offset = msg.offset()

        with self._lock:
            self._progress.pending += 1
        while True:
            try:
                self.writer.producer.produce(
                    self.writer.names.backups_topic,
                    value=value,
                    key=self.backup_id.encode(),
                    partition=self.partition,
                    headers=backup_format.chunk_headers(info),
                    on_delivery=delivered,
                )
                return
            except BufferError:
                self.writer.producer.poll(0.05)

    def _wait_delivered(self) -> bool:
        deadline = time.monotonic() + self.writer.timeout_s
        while True:
            self.writer.producer.poll(0.05)
            with self._lock:
                pending, error = self._progress.pending, self._progress.error
            if error is not None:
                log.warning(
                    "partition %d: backup %s not written: %s", self.partition, self.backup_id, error
                )
                return False
            if pending == 0:
                return True
            if self.aborted.is_set() or time.monotonic() > deadline:
                return False


class BackupWriter:
    """Takes backups of the partitions this worker leads, each on a thread of its own.

    Args:
        bootstrap: Kafka's address.
        names: the cluster's topic names.
        metrics: the worker's metrics.
        chunk_bytes: the size of one chunk record before compression.
        timeout_s: how long a backup may wait for Kafka to take its chunks.
    """

    def __init__(
        self,
        bootstrap: str,
        names: ClusterNames,
        metrics: WorkerMetrics,
        chunk_bytes: int = 1 << 20,
        timeout_s: float = 60.0,
    ) -> None:
        self.names = names
        self.metrics = metrics
        self.chunk_bytes = chunk_bytes
        self.timeout_s = timeout_s
        settings = dict(producer_settings(bootstrap))
        # Backups are bulk, not latency: batch and compress (store keys compress well).
        settings.update({"compression.type": "lz4", "linger.ms": 5})
        # A few chunks in flight, not the whole store: a produce beyond this waits (BufferError)
        # for deliveries. The queue must hold the largest record too.
        queue = max(4 * chunk_bytes, MAX_RECORD_BYTES + chunk_bytes)
        settings["queue.buffering.max.kbytes"] = queue // 1024
        self.producer = Producer(settings)
        self.jobs: dict[int, BackupJob] = {}

    def running(self, partition: int) -> bool:
        """Whether a backup of ``partition`` is being written."""
        job = self.jobs.get(partition)
        return job is not None and job.is_alive()

    def start(
        self,
        partition: int,
        store: PartitionStore,
        applied_offset: int,
        epoch: int,
        on_done: BackupDone,
    ) -> None:
        """Starts a backup of ``store`` as of ``applied_offset`` (call on the processor thread,
        right after a commit, so that the store holds exactly that offset)."""
        job = BackupJob(self, partition, store, applied_offset, epoch, on_done)
        self.jobs[partition] = job
        job.start()

    def cancel(self, partition: int) -> None:
        """Stops a running backup and waits for it: its store is about to close."""
        job = self.jobs.pop(partition, None)
        if job is not None:
            job.aborted.set()
            job.join(self.timeout_s)

    def close(self) -> None:
        """Stops every backup."""
        for partition in list(self.jobs):
            self.cancel(partition)
        self.producer.flush(5)


class Trimmer:
    """Deletes what a recorded backup made redundant: the log below it, and older backups.

    Args:
        bootstrap: Kafka's address.
        names: the cluster's topic names.
        margin_records: log records kept below the backup's offset anyway; negative: the log
            is never trimmed (older backups still are).
    """

    def __init__(self, bootstrap: str, names: ClusterNames, margin_records: int) -> None:
        self.names = names
        self.margin_records = margin_records
        self.admin = AdminClient(client_settings(bootstrap))

    def trim(self, partition: int, action: TrimLog) -> None:
        """Asks the broker to delete records below the backup (without waiting for it)."""
        targets = [TopicPartition(self.names.backups_topic, partition, action.backup_first_offset)]
        if self.margin_records >= 0:
            below = max(0, action.applied_offset + 1 - self.margin_records)
            targets.append(TopicPartition(self.names.log_topic, partition, below))
        futures = self.admin.delete_records(targets, request_timeout=30)
        for tp, future in futures.items():
            future.add_done_callback(_logged(tp))
        faults.reach("trim")  # the deletion asked for, maybe not done
        log.debug("partition %d: trimming %s", partition, targets)


def _logged(tp: TopicPartition) -> Callable[[object], None]:
    def done(future: object) -> None:
        error = future.exception()  # type: ignore[attr-defined]
        if error is not None:
            log.warning("trimming %s[%d] failed: %s", tp.topic, tp.partition, error)
        else:
            log.debug("trimmed %s[%d] below offset %d", tp.topic, tp.partition, tp.offset)

    return done
