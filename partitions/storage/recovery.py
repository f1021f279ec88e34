"""Recovery: how a worker brings an assigned partition's store up to date, and keeps it cheap
to bring back: restore from the newest backup when that beats replaying the log, back the
store up as the log grows, and trim what a recorded backup made redundant.

See partitions/storage/backup.py for how a backup is written and why trimming is safe.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException

from perdure.engine import backups
from perdure.engine.records import BackupTaken, Envelope, TrimLog
from perdure.partitions.config import WorkerSettings
from perdure.partitions.errors import PartitionError
from perdure.partitions.metrics import WorkerMetrics
from perdure.partitions.runtime.processor import PartitionProcessor
from perdure.partitions.storage.backup import BackupWriter, Trimmer
from perdure.partitions.storage.restore import Restorer
from perdure.partitions.storage.store import PartitionStore

log = logging.getLogger("perdure.recovery")

Append = Callable[[int, Envelope], None]
"""Appends an envelope to a partition of the log (thread-safe)."""

_CHECK_EVERY_S = 0.5
_RESTORE_TRIES = 3


@dataclass
class Opened:
    """A store ready for its processor, or why the partition cannot go on."""

    store: PartitionStore
    blocked: str | None = None


class Recovery:
    """Restores, backs up and trims the partitions of one worker.

    Args:
        settings: the worker's settings.
        metrics: the worker's metrics.
        append: how to append a record to the log (the worker's writer).
    """

    def __init__(self, settings: WorkerSettings, metrics: WorkerMetrics, append: Append) -> None:
        self.settings = settings
        self.metrics = metrics
        self.append = append
        names = settings.names
        self.enabled = settings.backup_min_records > 0
        self.writer = BackupWriter(
            settings.bootstrap, names, metrics, chunk_bytes=settings.backup_chunk_bytes
        )
        self.trimmer = Trimmer(settings.bootstrap, names, settings.trim_margin_records)
        self.restorer = Restorer(settings.bootstrap, names, metrics)
        self._last_check: dict[int, float] = {}
        self._last_backup_at: dict[int, float] = {}

    # -- on assignment ----------------------------------------------------------------------

    def open(
        self,
        partition: int,
        path: Path,
        log_start: int,
        log_end: int,
        store: PartitionStore | None = None,
    ) -> Opened:
        """Opens the partition's store (or takes ``store``, open already), from a backup when
        the log cannot or should not be replayed from where the store is (trimmed past it, or
        far longer than a restore)."""
        if store is None:
            store = PartitionStore.open(path)
        applied = store.applied_offset()
        behind = log_end - (applied + 1)
        if applied + 1 < log_start or (self.enabled and behind > self.settings.backup_min_records):
            store = self._restore(partition, path, store, log_start)
        applied = store.applied_offset()
        if applied + 1 < log_start:
            return Opened(
                store,
                f"the log starts at offset {log_start} but the store holds offset {applied} "
                "and no backup continues it",
            )
        return Opened(store)

    def _restore(
        self, partition: int, path: Path, store: PartitionStore, log_start: int
    ) -> PartitionStore:
        applied = store.applied_offset()
        for attempt in range(1, _RESTORE_TRIES + 1):
            try:
                found = self.restorer.find(partition, log_start)
                if found is None or found.applied_offset <= applied:
                    return store
                store.close()
                return self.restorer.restore(partition, path, found)
            except (PartitionError, KafkaException) as err:
                log.warning("partition %d: restore attempt %d failed: %s", partition, attempt, err)
                store = PartitionStore.open(path)
                time.sleep(0.5 * attempt)
        return store

    # -- while leading ----------------------------------------------------------------------

    def maybe_backup(self, proc: PartitionProcessor, now: float) -> None:
        """Starts a backup of a led partition if the log grew enough since the last one.

        Call on the processor thread between batches: the store then holds exactly
        ``proc.next_offset - 1``.
        """
        p = proc.partition
        if now - self._last_check.get(p, 0.0) < _CHECK_EVERY_S:
            return
        self._last_check[p] = now
        applied = proc.next_offset - 1
        last = backups.last_backup(proc.store)
        since = applied - (last.applied_offset if last is not None else -1)
        self.metrics.backup_lag_records.labels(str(p)).set(since)
        if not self.enabled or since <= 0 or self.writer.running(p):
            return
        s = self.settings
        wanted = max(s.backup_min_records, s.backup_state_ratio * (last.keys if last else 0))
        overdue = now - self._last_backup_at.setdefault(p, now) >= s.backup_interval_s
        if since < wanted and not overdue:
            return
        self._last_backup_at[p] = now
        store = proc.store
        assert isinstance(store, PartitionStore), "a worker's partitions are in RocksDB"
        self.writer.start(p, store, applied, proc.epoch, self._record)

    def _record(self, partition: int, epoch: int, record: BackupTaken) -> None:
        self.append(partition, Envelope(record, epoch))

    def trim(self, partition: int, action: TrimLog) -> None:
        """Trims behind a backup the log recorded."""
        self.trimmer.trim(partition, action)

    # -- on release -------------------------------------------------------------------------

    def release(self, partition: int) -> None:
        """Stops what runs for a partition whose store is about to close."""
        self.writer.cancel(partition)
        self._last_check.pop(partition, None)
        self._last_backup_at.pop(partition, None)
        with contextlib.suppress(KeyError):
            self.metrics.backup_lag_records.remove(str(partition))

    def close(self) -> None:
        """Stops every backup and closes the clients."""
        self.writer.close()
        self.restorer.close()
