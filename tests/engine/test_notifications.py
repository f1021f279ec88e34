"""The order in which pending entries completed is recorded and carried to a restart (issue 31,
fault 8: engine/notifications.py; partitions/remote/journal.py replays in that order)."""

from __future__ import annotations

from perdure.engine import keys, state_machine
from perdure.engine.ids import InvocationId
from perdure.engine.model import CallSpec, EntryKind, HandlerKind, JournalEntry, Target
from perdure.engine.records import (
    AnnounceLeader,
    CallResult,
    Command,
    Complete,
    Envelope,
    Invoke,
    ProposeEntry,
    PurgeExpired,
    TimerFired,
)
from perdure.engine.storage import MemoryTxn

SVC = Target("svc", "h")
A = str(InvocationId.new_unkeyed(b"\x01" * 16))


def ext(c: Command, ts: int = 1000) -> Envelope:
    return Envelope(c, 0, "", ts)


def lead(c: Command, ts: int = 1000) -> Envelope:
    return Envelope(c, 1, "w", ts)


def fresh() -> MemoryTxn:
    txn = MemoryTxn()
    state_machine.apply(Envelope(AnnounceLeader("w"), 1, "w", 0), txn, 0)
    return txn


def test_completions_are_recorded_in_the_order_they_came_and_a_restart_carries_them() -> None:
    """Issue 31, fault 8 (engine/notifications.py): what a replay needs to tell a race's
    results in the order they came."""
    txn = fresh()
    state_machine.apply(ext(Invoke(A, SVC, b"")), txn, 1)
    nap = JournalEntry(EntryKind.SLEEP, "nap", b"5000", completed=False)
    state_machine.apply(lead(ProposeEntry(A, 0, 0, nap)), txn, 2)
    callee = str(InvocationId.new_unkeyed(b"\x07" * 16))
    call = JournalEntry(
        EntryKind.CALL,
        "c",
        completed=False,
        call=CallSpec(Target("svc", "h"), HandlerKind.SERVICE, b"", callee),
    )
    state_machine.apply(lead(ProposeEntry(A, 0, 1, call)), txn, 3)
    state_machine.apply(ext(CallResult(A, 1, b"1")), txn, 4)  # the call's result first
    state_machine.apply(lead(TimerFired(A, 0), ts=7000), txn, 5)  # then the timer
    start = state_machine.start_action(txn, A)
    assert start is not None and start.notified == ((1, 2), (0, 2))
    state_machine.apply(lead(Complete(A, 0, b"1")), txn, 6)
    state_machine.apply(lead(PurgeExpired(1), ts=10**7), txn, 7)
    assert list(txn.scan(keys.notified_prefix(A))) == [], "forgotten with the invocation"
