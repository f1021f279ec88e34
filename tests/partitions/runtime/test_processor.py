"""PartitionProcessor and PartitionStore on a real RocksDB store (rocksdict), no broker.

Records are given as the consumer would hand them over; the processor never sees anything else
of Kafka.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from perdure.engine import codec, keys, schemas, state_machine
from perdure.engine.ids import InvocationId
from perdure.engine.model import HandlerKind, Target
from perdure.engine.records import (
    AnnounceLeader,
    Command,
    Complete,
    Envelope,
    Invoke,
    Invoked,
    StartInvocation,
)
from perdure.engine.storage import MemoryTxn
from perdure.partitions.runtime.processor import PartitionProcessor
from perdure.partitions.storage.store import PartitionStore

VERSION = str(schemas.SCHEMA_VERSION).encode()
A, B, C = (str(InvocationId.new_unkeyed(bytes([i]) * 16)) for i in (1, 2, 3))


@dataclass
class Record:
    """What the processor reads of a consumed Kafka message."""

    _offset: int
    _value: bytes | None
    _version: bytes | None = VERSION

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return [] if self._version is None else [(schemas.VERSION_HEADER, self._version)]

    def timestamp(self) -> tuple[int, int]:
        return (1, 1000 + self._offset)


def rec(offset: int, command: Command, epoch: int = 0) -> Record:
    return Record(offset, codec.encode_envelope(Envelope(command, epoch)))


def processor(path: Path, claim: str = "w/1", log_end: int = 0) -> PartitionProcessor:
    return PartitionProcessor(0, PartitionStore.open(path), claim, log_end)


def test_an_unreadable_record_blocks_the_partition_and_nothing_after_it_is_applied(
    tmp_path: Path,
) -> None:
    proc = processor(tmp_path / "p")
    batch = [
        rec(0, Invoke(A, Target("svc", "h"), b"")),
        Record(1, b"\x99garbage"),  # e.g. written by a newer worker
        rec(2, Invoke(B, Target("svc", "h"), b"")),
    ]
    proc.apply(batch)  # type: ignore[arg-type]
    assert proc.blocked is not None and proc.blocked[0] == 1
    assert proc.store.applied_offset() == 0, "the offset never moves past what was not applied"
    assert state_machine.get_status(proc.store.begin(), A) is not None
    assert state_machine.get_status(proc.store.begin(), B) is None
    proc.apply([rec(3, Invoke(B, Target("svc", "h"), b""))])  # type: ignore[list-item]
    assert proc.store.applied_offset() == 0
    assert not proc.should_announce(1e9, 0), "a blocked partition is never led"


def test_a_record_whose_apply_raises_is_rejected_and_the_partition_goes_on(
    tmp_path: Path,
) -> None:
    """Issue 31: a 70,000-byte object key blocked the partition at this record on Kafka."""
    long_key = Target("obj", "add", "k" * 70_000)
    batch = [
        rec(0, Invoke(A, Target("svc", "h"), b"")),
        rec(1, Invoke(B, long_key, b"", handler_kind=HandlerKind.EXCLUSIVE)),
        rec(2, Invoke(C, Target("svc", "h"), b"")),
    ]
    proc = processor(tmp_path / "p")
    applied = proc.apply(batch)  # type: ignore[arg-type]
    assert proc.blocked is None and applied.rejected == 1
    assert proc.store.applied_offset() == 2
    view = proc.store.begin()
    assert state_machine.get_status(view, A) is not None
    assert state_machine.get_status(view, B) is None, "nothing of the rejected record stays"
    assert state_machine.get_status(view, C) is not None
    marks = [keys.offset_of_rejected_key(k) for k, _ in proc.store.scan(keys.REJECTED)]
    assert marks == [1]
    # A replay from an empty store (a new owner, a standby) decides the same.
    again = processor(tmp_path / "q")
    again.apply(batch)  # type: ignore[arg-type]
    assert list(again.store.scan(b"")) == list(proc.store.scan(b""))


def test_an_unknown_record_version_blocks_the_partition(tmp_path: Path) -> None:
    proc = processor(tmp_path / "p")
    future = Record(0, codec.encode_envelope(Envelope(Invoke(A, Target("s", "h"), b""))), b"99")
    proc.apply([future])  # type: ignore[list-item]
    assert proc.blocked is not None and "99" in proc.blocked[1]
    assert proc.store.applied_offset() == -1


def test_a_claim_read_during_replay_is_history_not_leadership(tmp_path: Path) -> None:
    # An earlier assignment of this very process claimed the partition, then lost it before
    # reading its claim back. Now it has the partition again and replays that claim.
    proc = processor(tmp_path / "p", claim="worker-1/2", log_end=3)
    history = [
        rec(0, AnnounceLeader("worker-1/1"), epoch=1),
        rec(1, Invoke(A, Target("svc", "h"), b"")),
    ]
    applied = proc.apply(history)  # type: ignore[arg-type]
    assert not applied.became_leader and not proc.is_leader
    assert applied.actions == [], "no historic action is executed"
    proc.apply([rec(2, Complete(A, 0, b"1"), epoch=1)])  # type: ignore[list-item]
    assert proc.should_announce(1e9, 0)
    applied = proc.apply([rec(3, AnnounceLeader("worker-1/2"), epoch=2)])  # type: ignore[list-item]
    assert applied.became_leader and proc.is_leader


def test_leadership_actions_flow_once_leading(tmp_path: Path) -> None:
    proc = processor(tmp_path / "p")
    assert proc.should_announce(1e9, 0)
    proc.apply([rec(0, AnnounceLeader("w/1"), epoch=1)])  # type: ignore[list-item]
    applied = proc.apply([rec(1, Invoke(A, Target("svc", "h"), b"in"))])  # type: ignore[list-item]
    assert [type(a) for a in applied.actions] == [Invoked, StartInvocation]


def test_a_store_of_another_format_is_rebuilt(tmp_path: Path) -> None:
    store = PartitionStore.open(tmp_path / "p")
    store.commit(store.begin(), 41)
    store._db.put(keys.META_FORMAT, keys.encode_int(keys.STORE_FORMAT_VERSION - 1))
    store.close()
    again = PartitionStore.open(tmp_path / "p")
    assert again.applied_offset() == -1, "replayed from the log, never read in the old format"
    again.close()


@pytest.mark.parametrize("seed", range(5))
def test_batch_reads_merge_the_overlay_like_the_reference_store(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = PartitionStore.open(tmp_path / f"p{seed}")
    reference = MemoryTxn()
    base = store.begin()
    for _ in range(300):
        key = bytes([rng.choice(b"ab"), rng.randrange(20)])
        base.put(key, b"v0")
        reference.put(key, b"v0")
    store.commit(base, 0)
    batch = store.begin()
    for _ in range(300):
        key = bytes([rng.choice(b"abc"), rng.randrange(20)])
        if rng.random() < 0.4:
            batch.delete(key)
            reference.delete(key)
        else:
            value = bytes([rng.randrange(256)])
            batch.put(key, value)
            reference.put(key, value)
    for prefix, end in ((b"a", None), (b"b", b"b\x0a"), (b"c", None), (b"a", b"b")):
        assert list(batch.scan(prefix, end)) == list(reference.scan(prefix, end))
    store.close()
