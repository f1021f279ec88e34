"""Which backup of a partition's store the log has recorded, and what it lets the leader trim.

A leader writes a backup of its store (partitions/storage/backup.py) and then appends
:class:`BackupTaken`. The record is fenced like every leader record, so the log, not a worker,
decides which backups count: trimming follows only a backup that the log accepted, and a
zombie's backup, although a correct fold of the log up to its offset, never causes a trim.
"""

from __future__ import annotations

from dataclasses import dataclass

from perdure.engine import keys
from perdure.engine.records import Action, BackupTaken, Envelope, TrimLog
from perdure.engine.storage import PartitionReader, PartitionTxn


@dataclass(frozen=True, slots=True)
class RecordedBackup:
    """The newest backup the partition's log accepted."""

    backup_id: str
    applied_offset: int
    first_offset: int
    keys: int
    size_bytes: int


def last_backup(txn: PartitionReader) -> RecordedBackup | None:
    """The newest backup recorded in the log, or None before the first."""
    raw = txn.get(keys.META_BACKUP)
    if raw is None:
        return None
    applied, first, count, size = (keys.decode_int(raw[i : i + 8]) for i in range(0, 32, 8))
    return RecordedBackup(raw[32:].decode(), applied, first, count, size)


def backup_taken(_env: Envelope, c: BackupTaken, txn: PartitionTxn) -> list[Action]:
    """Records a backup newer than the last one and tells the leader to trim behind it."""
    current = last_backup(txn)
    if current is not None and c.applied_offset <= current.applied_offset:
        return []  # an older backup (written before the last one was recorded)
    txn.put(
        keys.META_BACKUP,
        b"".join(
            keys.encode_int(n) for n in (c.applied_offset, c.first_offset, c.keys, c.size_bytes)
        )
        + c.backup_id.encode(),
    )
    return [TrimLog(c.applied_offset, c.first_offset)]
