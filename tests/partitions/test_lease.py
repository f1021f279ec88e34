"""The lease (partitions/lease.py) and the invoker's checks of it before every effect.

Issue 31: a worker resumed after a SIGSTOP past its session ran steps that its successor had
journaled, through acknowledgements queued before the stop and handlers that woke up between
two steps. Here the clock is the test's: a lease lapses by moving it, as the stop does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from perdure import Context, Endpoint, Service
from perdure.engine.model import EntryKind, Target
from perdure.engine.records import AckEntry, Envelope, ProposeEntry, StartInvocation
from perdure.partitions.handlers.invoker import Invoker
from perdure.partitions.lease import Lease
from perdure.partitions.metrics import WorkerMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_lease_counts_from_when_its_renewal_was_sent_not_answered() -> None:
    clock = Clock()
    lease = Lease(4.0, clock)
    assert not lease.current(), "no lease before the coordinator first answered"
    lease.asked()
    clock.now += 3.0  # the answer took 3 s to come
    lease.answered(True)
    assert lease.current()
    clock.now += 1.0
    assert not lease.current(), "4 s from the sending, not from the answer"


def test_a_refused_renewal_and_a_lapse_give_nothing() -> None:
    clock = Clock()
    lease = Lease(4.0, clock)
    lease.asked()
    lease.answered(False)
    assert not lease.current()
    lease.asked()  # sent before the member left the group...
    lease.lapse()
    lease.answered(True)  # ...and answered after: it counts no more
    assert not lease.current()
    assert lease.lapsed_now() is False, "lapsed since the start: nothing to step down from"
    clock.now += 0.1
    lease.asked()
    lease.answered(True)
    assert lease.current() and not lease.lapsed_now()
    clock.now += 10
    assert lease.lapsed_now() and not lease.lapsed_now(), "said once per lapse"


def test_a_lease_is_shorter_than_the_session_by_a_heartbeat_and_a_margin() -> None:
    assert Lease.for_session(6000, 1000).length_s == pytest.approx(4.4)
    assert Lease.for_session(45_000, 1000).length_s == pytest.approx(39.5)
    assert Lease.always().current()


svc = Service("svc")
RAN: list[str] = []


@svc.handler()
async def two_steps(ctx: Context) -> int:
    await ctx.run("a", RAN.append, "a")
    await ctx.run("b", RAN.append, "b")
    return 2


class Writer:
    def __init__(self) -> None:
        self.records: list[Any] = []

    def append(self, partition: int, env: Envelope, on_delivery: Callable[..., None]) -> None:
        self.records.append(env.command)
        on_delivery(None)


async def _leading_with_step_a_run() -> tuple[Clock, Writer, Invoker]:
    """An invoker whose lease is current, running two_steps up to step a's proposal."""
    clock = Clock()
    lease = Lease(4.0, clock)
    lease.asked()
    lease.answered(True)
    writer = Writer()
    inv = Invoker(Endpoint([svc]), writer, WorkerMetrics(), lease=lease)  # type: ignore[arg-type]
    RAN.clear()
    inv.start(0, 1, StartInvocation("inv_1", Target("svc", "two_steps"), b"", (), 0))
    for _ in range(20):
        await asyncio.sleep(0)
    return clock, writer, inv


@pytest.mark.asyncio
async def test_a_lapsed_lease_stops_starts_acknowledgements_and_steps() -> None:
    clock, writer, inv = await _leading_with_step_a_run()
    assert RAN == ["a"] and isinstance(writer.records[-1], ProposeEntry)
    step_a = writer.records[-1].entry
    # The worker is stopped past its session: the acknowledgement of step a comes after.
    clock.now += 60
    inv.ack(0, AckEntry("inv_1", 0, 0, step_a))
    for _ in range(20):
        await asyncio.sleep(0)
    assert RAN == ["a"], "a deposed leader woke the handler into step b"
    inv.start(0, 1, StartInvocation("inv_2", Target("svc", "two_steps"), b"", (), 0))
    for _ in range(20):
        await asyncio.sleep(0)
    assert RAN == ["a"], "a deposed leader started an attempt"
    await inv.shutdown()


@pytest.mark.asyncio
async def test_a_handler_that_wakes_after_the_lease_lapsed_runs_no_step() -> None:
    clock, writer, inv = await _leading_with_step_a_run()
    step_a = writer.records[-1].entry
    # The acknowledgement was queued before the stop and runs first thing after it: the
    # handler wakes, and meets the lapsed lease at the start of step b.
    inv.ack(0, AckEntry("inv_1", 0, 0, step_a))
    clock.now += 60
    for _ in range(20):
        await asyncio.sleep(0)
    assert RAN == ["a"]
    assert not any(
        isinstance(r, ProposeEntry) and r.entry.kind is EntryKind.RUN and r.index == 1
        for r in writer.records
    )
    await inv.shutdown()
