"""A record whose apply raises is rejected, not blocked on (issue 31, engine/rejection.py);
and a shared handler's state changes are refused.

Each case is a record that stopped a partition on the main this issue started from (the
processor blocked on the exception): a delay, an awakeable index or a name outside the byte
formats. Now the record changes nothing it began to write, ends what it belongs to with a
clear failure, is kept as rejected at its offset, and the next record applies as usual.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from perdure.engine import keys, state_machine
from perdure.engine.ids import InvocationId
from perdure.engine.model import (
    Caller,
    EntryKind,
    Failure,
    HandlerKind,
    JournalEntry,
    Phase,
    Reply,
    StateOp,
    StateOpKind,
    Target,
)
from perdure.engine.records import (
    AckEntry,
    AnnounceLeader,
    CallResult,
    Command,
    CompleteAwakeable,
    Deliver,
    Envelope,
    Invoke,
    ProposeEntry,
    RecordRejected,
    ResponseStatus,
    SendResponse,
)
from perdure.engine.status import get_status
from perdure.engine.storage import MemoryTxn

SVC = Target("svc", "h")
OBJ = Target("obj", "add", "k")
A, B = (str(InvocationId.new_unkeyed(bytes([i]) * 16)) for i in (1, 2))
REPLY = Reply(0, "req-1")
LONG = "x" * 70_000


def ext(c: Command, ts: int = 1000) -> Envelope:
    return Envelope(c, 0, "", ts)


def lead(c: Command, ts: int = 1000) -> Envelope:
    return Envelope(c, 1, "w", ts)


def fresh() -> MemoryTxn:
    txn = MemoryTxn()
    state_machine.apply(Envelope(AnnounceLeader("w"), 1, "w", 0), txn, 0)
    return txn


def rejections(txn: MemoryTxn) -> dict[int, dict[str, object]]:
    return {keys.offset_of_rejected_key(k): json.loads(v) for k, v in txn.scan(keys.REJECTED)}


def failure_of(actions: list[object]) -> Failure | None:
    for a in actions:
        if isinstance(a, SendResponse):
            assert a.response.status is ResponseStatus.FAILED
            return a.response.failure
        if isinstance(a, Deliver) and isinstance(a.command, CallResult):
            return a.command.failure
    return None


@dataclass
class Case:
    name: str
    record: Envelope


CASES = [
    Case("delay past the key format", ext(Invoke(A, SVC, b"", reply=REPLY, delay_ms=2**64))),
    Case(
        "awakeable index past u32, from the ingress",
        ext(CompleteAwakeable(B, 2**32, b"v", None, reply=REPLY)),
    ),
    Case(
        "awakeable index past u32, from a handler",
        ext(CompleteAwakeable(B, 2**32, b"v", None, caller=Caller(A, 3))),
    ),
    Case("a 70,000-byte object key", ext(Invoke(A, Target("obj", "add", LONG), b"", reply=REPLY))),
    Case(
        "a 70,000-byte workflow id, from a handler",
        ext(
            Invoke(
                A,
                Target("wf", "run", LONG),
                b"",
                handler_kind=HandlerKind.WORKFLOW,
                caller=Caller(B, 1),
            )
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_command_that_cannot_be_applied_is_answered_with_a_400_and_rejected(case: Case) -> None:
    txn = fresh()
    if isinstance(case.record.command, CompleteAwakeable):
        state_machine.apply(ext(Invoke(B, SVC, b"")), txn, 1)
    before = dict(txn.data)
    actions = state_machine.apply(case.record, txn, 7)
    rejected = [a for a in actions if isinstance(a, RecordRejected)]
    assert len(rejected) == 1 and rejected[0].offset == 7
    failure = failure_of(actions)
    assert failure is not None and failure.code == 400
    assert "rejected" in failure.message and len(failure.message) < 700
    # Nothing of the record stays but its mark.
    after = {k: v for k, v in txn.data.items() if not k.startswith(keys.REJECTED)}
    assert after == before
    assert rejections(txn)[7]["kind"] == type(case.record.command).__name__
    # The partition goes on: the next record applies as usual.
    ok = state_machine.apply(ext(Invoke(str(InvocationId.new_unkeyed()), SVC, b"")), txn, 8)
    assert not any(isinstance(a, RecordRejected) for a in ok) and ok


def _running_object(txn: MemoryTxn) -> None:
    state_machine.apply(ext(Invoke(A, OBJ, b"", handler_kind=HandlerKind.EXCLUSIVE)), txn, 1)
    s = get_status(txn, A)
    assert s is not None and s.phase is Phase.RUNNING


@pytest.mark.parametrize(
    "entry",
    [
        JournalEntry(EntryKind.RUN, "s", b"1", state_ops=(StateOp(StateOpKind.SET, LONG, b"v"),)),
        JournalEntry(EntryKind.SLEEP, "nap", str(2**70).encode()),
    ],
    ids=["a 70,000-byte state name", "a sleep past the key format"],
)
def test_a_journal_entry_that_cannot_be_applied_fails_its_invocation(entry: JournalEntry) -> None:
    txn = fresh()
    _running_object(txn)
    actions = state_machine.apply(lead(ProposeEntry(A, 0, 0, entry)), txn, 2)
    assert any(isinstance(a, RecordRejected) for a in actions)
    assert not any(isinstance(a, AckEntry) for a in actions)
    s = get_status(txn, A)
    assert s is not None and s.phase is Phase.COMPLETED
    assert s.failure is not None and s.failure.code == 400
    # The key is free again and holds no half-written state.
    assert txn.get(keys.lock_key(OBJ.service, "k")) is None
    assert list(txn.scan(keys.state_prefix(OBJ.service, "k"))) == []
    assert list(txn.scan(keys.TIMER)) == []


def test_a_rejection_is_the_same_on_every_replay() -> None:
    log = [
        ext(Invoke(A, OBJ, b"", handler_kind=HandlerKind.EXCLUSIVE)),
        lead(ProposeEntry(A, 0, 0, JournalEntry(EntryKind.SLEEP, "nap", str(2**70).encode()))),
        ext(Invoke(B, SVC, b"", reply=REPLY, delay_ms=2**64)),
        ext(Invoke(B, SVC, b"", reply=REPLY)),
    ]

    def fold() -> tuple[dict[bytes, bytes], list[list[object]]]:
        txn = fresh()
        out = [list(state_machine.apply(env, txn, i + 1)) for i, env in enumerate(log)]
        return txn.data, out

    first, second = fold(), fold()
    assert first == second
    assert sorted(rejections_of(first[0])) == [2, 3]


def rejections_of(data: dict[bytes, bytes]) -> list[int]:
    return [keys.offset_of_rejected_key(k) for k in data if k.startswith(keys.REJECTED)]


def test_a_rollback_undoes_only_the_failed_record() -> None:
    txn = MemoryTxn()
    txn.put(b"a", b"1")
    txn.savepoint()
    txn.put(b"a", b"2")
    txn.put(b"b", b"3")
    txn.delete(b"a")
    txn.rollback()
    assert txn.data == {b"a": b"1"}


def test_a_shared_handlers_entry_that_changes_state_fails_it_and_writes_nothing() -> None:
    """Issue 31, fault 5: the state machine applied any keyed invocation's state ops."""
    txn = fresh()
    _running_object(txn)  # the key's exclusive handler runs
    state_machine.apply(ext(Invoke(B, OBJ, b"", handler_kind=HandlerKind.SHARED)), txn, 2)
    read = StateOp(StateOpKind.READ, "total", b"1")
    write = StateOp(StateOpKind.SET, "total", b"2")
    ok = JournalEntry(EntryKind.RUN, "s", b"1", state_ops=(read,))
    assert any(
        isinstance(a, AckEntry)
        for a in state_machine.apply(lead(ProposeEntry(B, 0, 0, ok)), txn, 3)
    )
    bad = JournalEntry(EntryKind.RUN, "t", b"1", state_ops=(read, write))
    state_machine.apply(lead(ProposeEntry(B, 0, 1, bad)), txn, 4)
    s = get_status(txn, B)
    assert s is not None and s.phase is Phase.COMPLETED and s.failure is not None
    assert s.failure.code == 400 and "shared" in s.failure.message
    assert list(txn.scan(keys.state_prefix(OBJ.service, "k"))) == []
