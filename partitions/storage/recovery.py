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
from perdure.partitions.storage.backup_policy import QUIET_MIN_RECORDS, BackupPolicy
from perdure.partitions.storage.restore import Restorer
from perdure.partitions.storage.store import PartitionStore

log = logging.getLogger("perdure.recovery")

Append = Callable[[int, Envelope], None]
"""Appends an envelope to a partition of the log (thread-safe)."""

_CHECK_EVERY_S = 0.5
_RESTORE_TRIES = 3


@dataclass
class _Led:
    """What the backup policy measures of one led partition."""

    checked_at: float
    backup_at: float
    applied: int
    grew_at: float
    folded_at_backup: float = 0.0
    """The processor's fold seconds when the last backup began (0: since it opened, whose
    replay is part of what the next owner would replay)."""
    last_backup_s: float = 0.0


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
        self.policy = BackupPolicy(
            min_records=settings.backup_min_records,
            replay_s=settings.backup_replay_s,
            quiet_s=settings.backup_quiet_s,
            interval_s=settings.backup_interval_s,
        )
        self._parts: dict[int, _Led] = {}

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
        """Starts a backup of a led partition when the policy says one is due
        (partitions/storage/backup_policy.py).

        Call on the processor thread between batches: the store then holds exactly
        ``proc.next_offset - 1``.
        """
        p = proc.partition
        applied = proc.next_offset - 1
        led = self._parts.get(p)
        if led is None:
            led = self._parts[p] = _Led(now, now, applied, now)
        elif now - led.checked_at < _CHECK_EVERY_S:
            return
        led.checked_at = now
        if applied - led.applied >= QUIET_MIN_RECORDS:
            # Busy: the quiet spell starts again. A trickle below it (the periodic purge, the
            # last backup's own record) leaves a spell quiet.
            led.applied, led.grew_at = applied, now
        last = backups.last_backup(proc.store)
        since = applied - (last.applied_offset if last is not None else -1)
        self.metrics.backup_lag_records.labels(str(p)).set(since)
        if not self.enabled or self.writer.running(p):
            return
        why = self.policy.due(
            since,
            proc.fold_seconds - led.folded_at_backup,
            led.last_backup_s,
            idle_s=now - led.grew_at,
            since_backup_s=now - led.backup_at,
        )
        if why is None:
            return
        led.backup_at = now
        led.folded_at_backup = proc.fold_seconds
        store = proc.store
        assert isinstance(store, PartitionStore), "a worker's partitions are in RocksDB"
        log.debug("partition %d: backing up %d records since the last (%s)", p, since, why)
        self.writer.start(p, store, applied, proc.epoch, self._record)

    def _record(self, partition: int, epoch: int, record: BackupTaken) -> None:
        led, job = self._parts.get(partition), self.writer.jobs.get(partition)
        if led is not None and job is not None:
            led.last_backup_s = time.monotonic() - job.started_at
        self.append(partition, Envelope(record, epoch))

    def trim(self, partition: int, action: TrimLog) -> None:
        """Trims behind a backup the log recorded."""
        self.trimmer.trim(partition, action)

    # -- on release -------------------------------------------------------------------------

    def release(self, partition: int) -> None:
        """Stops what runs for a partition whose store is about to close."""
        self.writer.cancel(partition)
        self._parts.pop(partition, None)
        with contextlib.suppress(KeyError):
            self.metrics.backup_lag_records.remove(str(partition))

    def close(self) -> None:
        """Stops every backup and closes the clients."""
        self.writer.close()
        self.restorer.close()
