"""A leader's periodic duties (timers, outbox) against a real store, with a recording writer.

They decide from the store, not from memory: a timer is fired until the store shows it applied,
and an outbox entry is delivered on its own back-off until its receiver answers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from perdure.engine import state_machine
from perdure.engine.ids import InvocationId
from perdure.engine.model import CallSpec, EntryKind, HandlerKind, JournalEntry, Target
from perdure.engine.records import (
    AnnounceLeader,
    CallResult,
    Command,
    Envelope,
    Invoke,
    ProposeEntry,
    TimerFired,
)
from perdure.partitions.kafka import crossing as loop_crossing
from perdure.partitions.metrics import WorkerMetrics
from perdure.partitions.runtime import duties as leader_duties
from perdure.partitions.runtime.duties import Outbox
from perdure.partitions.runtime.processor import PartitionProcessor
from perdure.partitions.storage.store import PartitionStore

A, B = (str(InvocationId.new_unkeyed(bytes([i]) * 16)) for i in (1, 2))
NOW_MS = int(time.time() * 1000)


class Writer:
    def __init__(self) -> None:
        self.records: list[Command] = []

    def append(self, partition: int, env: Envelope, on_delivery: Any = None) -> None:
        self.records.append(env.command)


def leader(tmp_path: Path, *commands: tuple[Command, int]) -> tuple[Writer, PartitionProcessor]:
    store = PartitionStore.open(tmp_path / "p")
    batch = store.begin()
    state_machine.apply(Envelope(AnnounceLeader("w/1"), 1, "w", 0), batch)
    for command, epoch in commands:
        state_machine.apply(Envelope(command, epoch, "w", NOW_MS - 10_000), batch)
    store.commit(batch, len(commands))
    proc = PartitionProcessor(0, store, "w/1", 0)
    proc.is_leader = True
    return Writer(), proc


def test_a_fired_timer_fires_again_until_the_store_shows_it_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nap = JournalEntry(EntryKind.SLEEP, "nap", b"1000", completed=False)
    writer, proc = leader(
        tmp_path, (Invoke(A, Target("s", "h"), b""), 0), (ProposeEntry(A, 0, 0, nap), 1)
    )

    def fire() -> None:
        leader_duties.fire_timers(proc, writer, int(time.time() * 1000))  # type: ignore[arg-type]

    timers = state_machine.timers(proc.store.begin())
    assert len(timers) == 1
    t = timers[0]
    proc.timers = [(t.wake_at_ms, t.wake_at_ms, t.invocation_id, t.index)]
    fire()
    assert writer.records == [TimerFired(A, 0)]
    assert proc.timers[0][0] >= NOW_MS + 1000, "checked again in 2 s, not at once"
    monkeypatch.setattr(leader_duties, "TIMER_REFIRE_MS", 0)
    proc.timers = [(0, *proc.timers[0][1:])]
    fire()  # the first record was lost: still armed in the store
    fire()
    assert writer.records.count(TimerFired(A, 0)) == 3
    batch = proc.store.begin()
    state_machine.apply(Envelope(TimerFired(A, 0), 1, "w", NOW_MS), batch)
    proc.store.commit(batch, 10)
    fire()
    assert writer.records.count(TimerFired(A, 0)) == 3, "applied: never fired again"
    assert proc.timers == []


def test_outbox_entries_are_redelivered_on_a_back_off_until_answered(tmp_path: Path) -> None:
    spec = CallSpec(Target("s", "h"), HandlerKind.SERVICE, b"", B)
    call = JournalEntry(EntryKind.CALL, "s/h", call=spec, completed=False)
    writer, proc = leader(
        tmp_path, (Invoke(A, Target("s", "h"), b""), 0), (ProposeEntry(A, 0, 0, call), 1)
    )
    outbox = Outbox(writer, 1, "w/1", WorkerMetrics(), 0.01)  # type: ignore[arg-type]
    deliveries: list[float] = []
    start = time.monotonic()
    while time.monotonic() - start < 0.5:
        before = len(writer.records)
        outbox.redeliver(proc, time.monotonic())
        if len(writer.records) > before:
            deliveries.append(time.monotonic() - start)
        time.sleep(0.005)
    # 0, then 10 ms, 20, 40, 80, 160 ms apart: about 6 in half a second, not 100.
    assert 4 <= len(deliveries) <= 8, deliveries
    batch = proc.store.begin()
    state_machine.apply(Envelope(CallResult(A, 0, b"1"), 0, "", NOW_MS), batch)
    proc.store.commit(batch, 10)
    before = len(writer.records)
    outbox.redeliver(proc, time.monotonic())
    assert len(writer.records) == before and proc.redeliveries == {}


def test_the_crossing_hands_a_batch_over_in_order_and_a_failing_call_stops_none() -> None:
    import asyncio
    import threading

    async def scenario() -> list[object]:
        seen: list[object] = []
        crossing = loop_crossing.LoopCrossing(asyncio.get_running_loop())

        def boom() -> None:
            raise RuntimeError("a failing call")

        def processor() -> None:
            crossing.gather()
            crossing.call(seen.append, 1)
            crossing.call(boom)
            crossing.call(seen.append, 2)
            assert seen == [], "nothing crosses before the batch is done"
            # Another thread's call does not wait for the batch.
            other = threading.Thread(target=crossing.call, args=(seen.append, "other"))
            other.start()
            other.join()
            crossing.flush()
            crossing.call(seen.append, 3)  # outside a batch: at once

        await asyncio.to_thread(processor)
        for _ in range(10):
            await asyncio.sleep(0)
        return seen

    seen = asyncio.run(scenario())
    assert seen == ["other", 1, 2, 3]
