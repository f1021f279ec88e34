"""A leader's periodic duties (timers, outbox) against a real store, with a recording writer.

They decide from the store, not from memory: a timer is fired until the store shows it applied,
and an outbox entry is delivered on its own back-off until its receiver answers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from engine import state_machine
from engine.ids import InvocationId
from engine.model import CallSpec, EntryKind, HandlerKind, JournalEntry, Target
from engine.records import (
    AnnounceLeader,
    CallResult,
    Command,
    Envelope,
    Invoke,
    ProposeEntry,
    TimerFired,
)
from partitions import worker as worker_module
from partitions.config import WorkerSettings
from partitions.processor import PartitionProcessor
from partitions.store import PartitionStore
from partitions.worker import Worker
from sdk import Endpoint

A, B = (str(InvocationId.new_unkeyed(bytes([i]) * 16)) for i in (1, 2))
NOW_MS = int(time.time() * 1000)


class Writer:
    def __init__(self) -> None:
        self.records: list[Command] = []

    def append(self, partition: int, env: Envelope, on_delivery: Any = None) -> None:
        self.records.append(env.command)


def leader(tmp_path: Path, *commands: tuple[Command, int]) -> tuple[Worker, PartitionProcessor]:
    store = PartitionStore.open(tmp_path / "p")
    batch = store.begin()
    state_machine.apply(Envelope(AnnounceLeader("w/1"), 1, "w", 0), batch)
    for command, epoch in commands:
        state_machine.apply(Envelope(command, epoch, "w", NOW_MS - 10_000), batch)
    store.commit(batch, len(commands))
    proc = PartitionProcessor(0, store, "w/1", 0)
    proc.is_leader = True
    w = Worker(Endpoint([]), WorkerSettings(redelivery_interval_s=0.01))
    w.writer = Writer()  # type: ignore[assignment]
    w.processors[0] = proc
    return w, proc


def test_a_fired_timer_fires_again_until_the_store_shows_it_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nap = JournalEntry(EntryKind.SLEEP, "nap", b"1000", completed=False)
    w, proc = leader(
        tmp_path, (Invoke(A, Target("s", "h"), b""), 0), (ProposeEntry(A, 0, 0, nap), 1)
    )
    timers = state_machine.timers(proc.store.begin())
    assert len(timers) == 1
    t = timers[0]
    proc.timers = [(t.wake_at_ms, t.wake_at_ms, t.invocation_id, t.index)]
    w._fire_timers(proc)
    assert w.writer.records == [TimerFired(A, 0)]  # type: ignore[union-attr]
    assert proc.timers[0][0] >= NOW_MS + 1000, "checked again in 2 s, not at once"
    monkeypatch.setattr(worker_module, "_TIMER_REFIRE_MS", 0)
    proc.timers = [(0, *proc.timers[0][1:])]
    w._fire_timers(proc)  # the first record was lost: still armed in the store
    w._fire_timers(proc)
    assert w.writer.records.count(TimerFired(A, 0)) == 3  # type: ignore[union-attr]
    batch = proc.store.begin()
    state_machine.apply(Envelope(TimerFired(A, 0), 1, "w", NOW_MS), batch)
    proc.store.commit(batch, 10)
    w._fire_timers(proc)
    assert w.writer.records.count(TimerFired(A, 0)) == 3, "applied: never fired again"  # type: ignore[union-attr]
    assert proc.timers == []


def test_outbox_entries_are_redelivered_on_a_back_off_until_answered(tmp_path: Path) -> None:
    spec = CallSpec(Target("s", "h"), HandlerKind.SERVICE, b"", B)
    call = JournalEntry(EntryKind.CALL, "s/h", call=spec, completed=False)
    w, proc = leader(
        tmp_path, (Invoke(A, Target("s", "h"), b""), 0), (ProposeEntry(A, 0, 0, call), 1)
    )
    deliveries: list[float] = []
    start = time.monotonic()
    while time.monotonic() - start < 0.5:
        before = len(w.writer.records)  # type: ignore[union-attr]
        w._redeliver(proc)
        if len(w.writer.records) > before:  # type: ignore[union-attr]
            deliveries.append(time.monotonic() - start)
        time.sleep(0.005)
    # 0, then 10 ms, 20, 40, 80, 160 ms apart: about 6 in half a second, not 100.
    assert 4 <= len(deliveries) <= 8, deliveries
    batch = proc.store.begin()
    state_machine.apply(Envelope(CallResult(A, 0, b"1"), 0, "", NOW_MS), batch)
    proc.store.commit(batch, 10)
    before = len(w.writer.records)  # type: ignore[union-attr]
    w._redeliver(proc)
    assert len(w.writer.records) == before and proc.redeliveries == {}  # type: ignore[union-attr]
