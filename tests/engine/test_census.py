"""The census behind the in-flight gauges: each invocation counted once, under its status."""

from __future__ import annotations

from datetime import timedelta

from perdure.engine import census, state_machine
from perdure.engine.model import EntryKind, HandlerKind, JournalEntry, Target
from perdure.engine.records import (
    AnnounceLeader,
    AttemptFailed,
    Command,
    Complete,
    Envelope,
    Invoke,
    ProposeEntry,
    Suspend,
)
from perdure.engine.storage import MemoryTxn

SVC = Target("svc", "h")
ADD = Target("counter", "add", "k")
NOW = 1000


def ext(c: Command) -> Envelope:
    return Envelope(c, 0, "", NOW)


def lead(c: Command) -> Envelope:
    return Envelope(c, 1, "w", NOW)


def test_every_in_flight_status_is_counted_and_ended_ones_are_not() -> None:
    txn = MemoryTxn()
    state_machine.apply(Envelope(AnnounceLeader("w"), 1, "w", 0), txn)
    for c in (
        Invoke("run", SVC, b""),
        Invoke("sleep", SVC, b""),
        ProposeEntry("sleep", 0, 0, JournalEntry(EntryKind.SLEEP, "", value=b"60000")),
        Suspend("sleep", 0, (0,)),
        Invoke("flaky", SVC, b""),
        AttemptFailed("flaky", 0, "boom", 60_000),
        Invoke("done", SVC, b""),
        Complete("done", 0, b"1"),
        Invoke("holder", ADD, b"", handler_kind=HandlerKind.EXCLUSIVE),
        Invoke("queued-1", ADD, b"", handler_kind=HandlerKind.EXCLUSIVE),
        Invoke("queued-2", ADD, b"", handler_kind=HandlerKind.EXCLUSIVE),
        Invoke("later", SVC, b"", delay_ms=int(timedelta(hours=1) / timedelta(milliseconds=1))),
    ):
        led = isinstance(c, (ProposeEntry, Suspend, AttemptFailed, Complete))
        state_machine.apply(lead(c) if led else ext(c), txn)

    taken = census.take(txn, NOW + 1)
    assert taken.complete
    assert taken.counts == {
        "scheduled": 1,
        "pending": 2,
        "running": 2,  # run, holder
        "suspended": 1,
        "backing-off": 1,
    }


def test_a_census_past_its_budget_says_its_counts_are_lower_bounds() -> None:
    txn = MemoryTxn()
    state_machine.apply(Envelope(AnnounceLeader("w"), 1, "w", 0), txn)
    for i in range(10):
        state_machine.apply(ext(Invoke(f"i{i}", SVC, b"")), txn)
    taken = census.take(txn, NOW, budget=4)
    assert not taken.complete
    assert taken.counts["running"] == 4
