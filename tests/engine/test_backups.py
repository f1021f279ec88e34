"""Which backups the log records, and the trims they allow: table-driven, no broker."""

from __future__ import annotations

import pytest

from perdure.engine import backups, codec, state_machine
from perdure.engine.records import AnnounceLeader, BackupTaken, Command, Envelope, TrimLog
from perdure.engine.storage import MemoryTxn


def _led(epoch: int = 1) -> MemoryTxn:
    txn = MemoryTxn()
    state_machine.apply(Envelope(AnnounceLeader("w"), epoch, "w", 0), txn)
    return txn


def _backup(applied: int, first: int = 0, bid: str = "b") -> BackupTaken:
    return BackupTaken(bid, applied, first, keys=10, size_bytes=100)


@pytest.mark.parametrize(
    ("before", "record", "epoch", "actions", "recorded"),
    [
        # The first backup is recorded and allows a trim behind it.
        ([], _backup(10, 3, "a"), 1, [TrimLog(10, 3)], ("a", 10, 3)),
        # A newer one replaces it.
        ([_backup(10, 3, "a")], _backup(20, 7, "b"), 1, [TrimLog(20, 7)], ("b", 20, 7)),
        # An older (or the same) offset changes nothing: trims never go back.
        ([_backup(20, 7, "b")], _backup(15, 9, "c"), 1, [], ("b", 20, 7)),
        ([_backup(20, 7, "b")], _backup(20, 9, "c"), 1, [], ("b", 20, 7)),
        # A deposed leader's backup (another epoch) is fenced: no trim, nothing recorded.
        ([], _backup(30, 1, "z"), 0, [], None),
        ([_backup(10, 3, "a")], _backup(30, 9, "z"), 2, [], ("a", 10, 3)),
    ],
)
def test_backup_taken(
    before: list[BackupTaken],
    record: BackupTaken,
    epoch: int,
    actions: list[TrimLog],
    recorded: tuple[str, int, int] | None,
) -> None:
    txn = _led(1)
    for b in before:
        state_machine.apply(Envelope(b, 1, "w", 0), txn)
    assert state_machine.apply(Envelope(record, epoch, "w", 0), txn) == actions
    last = backups.last_backup(txn)
    if recorded is None:
        assert last is None
    else:
        assert last is not None
        assert (last.backup_id, last.applied_offset, last.first_offset) == recorded
        assert (last.keys, last.size_bytes) == (10, 100)


def test_backup_taken_round_trips_through_avro() -> None:
    record: Command = _backup(2**40, 2**33, "id-1")
    env = Envelope(record, 3, "w-1", 1234)
    assert codec.decode_envelope(codec.encode_envelope(env), 1234) == env
