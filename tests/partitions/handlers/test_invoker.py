"""The Invoker on its own: real SDK handlers, a recording log writer, no broker.

The writer stands in for Kafka only as far as the invoker sees it (an append with a delivery
callback); what Kafka does is tested against the real broker elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from perdure import Context, Endpoint, Service
from perdure.engine.model import EntryKind, JournalEntry, Target
from perdure.engine.records import (
    AckEntry,
    Complete,
    Envelope,
    ProposeEntry,
    StartInvocation,
    Suspend,
)
from perdure.partitions.handlers import invoker as invoker_module
from perdure.partitions.handlers.invoker import Invoker
from perdure.partitions.metrics import WorkerMetrics

svc = Service("svc")


@svc.handler()
async def two_steps(ctx: Context) -> int:
    a = await ctx.run("a", lambda: 1)
    b = await ctx.run("b", lambda: 2)
    return a + b


@svc.handler()
async def napper(ctx: Context) -> str:
    from datetime import timedelta

    await ctx.sleep(timedelta(seconds=60))
    return "awake"


APP = Endpoint([svc])


class Writer:
    """Keeps appended records; ``fail`` makes the next delivery fail like a Kafka timeout."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.fail = False

    def append(self, partition: int, env: Envelope, on_delivery: Callable[..., None]) -> None:
        self.records.append(env.command)
        err = _TimedOut() if self.fail else None
        on_delivery(err)


class _TimedOut:
    def str(self) -> str:
        return "Local: Message timed out"


def invoker(**kw: Any) -> tuple[Invoker, Writer, list[tuple[int, str]], WorkerMetrics]:
    writer = Writer()
    restarts: list[tuple[int, str]] = []
    metrics = WorkerMetrics()
    inv = Invoker(
        APP,
        writer,  # type: ignore[arg-type]
        metrics,
        restart=lambda p, i: restarts.append((p, i)),
        **kw,
    )
    return inv, writer, restarts, metrics


def start(handler: str, journal: tuple[JournalEntry, ...] = ()) -> StartInvocation:
    return StartInvocation("inv_1", Target("svc", handler), b"", journal, 0)


def gauge(metrics: WorkerMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None
    return value


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


def test_a_refused_record_restarts_the_attempt_from_the_store_not_from_memory() -> None:
    async def scenario() -> None:
        inv, writer, restarts, _ = invoker()
        writer.fail = True
        inv.start(3, 1, start("two_steps"))
        await settle()
        await asyncio.sleep(1.2)  # the restart is asked for after a pause
        assert restarts == [(3, "inv_1")]
        assert "inv_1" not in inv.attempts, "the remembered start is dropped"

    asyncio.run(scenario())


def test_a_proposal_never_acknowledged_restarts_the_attempt() -> None:
    async def scenario() -> None:
        inv, writer, restarts, _ = invoker(ack_timeout_s=0.2)
        watchdog = asyncio.get_running_loop().create_task(inv.watch_acks())
        inv.start(0, 1, start("two_steps"))
        await asyncio.sleep(1.8)
        watchdog.cancel()
        assert restarts == [(0, "inv_1")]
        assert [type(r) for r in writer.records] == [ProposeEntry]

    asyncio.run(scenario())


def test_the_handler_goes_on_with_the_journaled_value() -> None:
    async def scenario() -> None:
        inv, writer, _, _ = invoker()
        inv.start(0, 1, start("two_steps"))
        await settle()
        journaled = JournalEntry(EntryKind.RUN, "a", b"40")  # an earlier proposal won
        inv.ack(0, AckEntry("inv_1", 0, 0, journaled))
        await settle()
        inv.ack(0, AckEntry("inv_1", 0, 1, JournalEntry(EntryKind.RUN, "b", b"2")))
        await settle()
        complete = writer.records[-1]
        assert isinstance(complete, Complete) and complete.result == b"42"

    asyncio.run(scenario())


def test_the_running_gauge_drops_to_zero_when_handlers_end() -> None:
    async def scenario() -> None:
        inv, _, _, metrics = invoker()
        inv.start(0, 1, start("two_steps"))
        await settle()
        assert gauge(metrics, "perdure_handlers_running") == 1
        for i, value in ((0, b"1"), (1, b"2")):
            inv.ack(0, AckEntry("inv_1", 0, i, JournalEntry(EntryKind.RUN, "ab"[i], value)))
            await settle()
        assert gauge(metrics, "perdure_handlers_running") == 0

    asyncio.run(scenario())


def test_a_missing_handler_parks_the_invocation_and_never_fails_it() -> None:
    async def scenario() -> None:
        inv, writer, _, metrics = invoker()
        inv.start(0, 1, StartInvocation("inv_2", Target("other", "h"), b"", (), 0))
        await settle()
        assert writer.records == [], "no completion, no failure: another worker may host it"
        assert gauge(metrics, "perdure_invocations_parked") == 1
        inv.release_partition(0)
        assert gauge(metrics, "perdure_invocations_parked") == 0

    asyncio.run(scenario())


def test_a_completion_for_a_suspended_attempt_restarts_it_from_the_store() -> None:
    async def scenario() -> None:
        inv, writer, restarts, _ = invoker(suspend_after_s=0.05)
        inv.start(0, 1, start("napper"))
        await asyncio.sleep(0.3)
        assert isinstance(writer.records[-1], Suspend)
        assert writer.records[-1].waiting_on == (0,)
        # The Suspend was lost: the partition still thinks it runs and acks the timer.
        fired = JournalEntry(EntryKind.SLEEP, "sleep", b"1", completed=True)
        inv.ack(0, AckEntry("inv_1", 0, 0, fired))
        assert restarts == [(0, "inv_1")]

    asyncio.run(scenario())


def test_an_ack_racing_the_suspension_is_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """The acknowledgement lands while the suspension's wait is being cancelled: every run
    hits that moment (the wait is wrapped to deliver the ack exactly then), and the handler
    goes on with the entry instead of suspending on it."""
    inv, writer, _, _ = invoker(suspend_after_s=0.05)
    fired = JournalEntry(EntryKind.SLEEP, "sleep", b"1", completed=True)
    real_wait_for = asyncio.wait_for
    hits: list[int] = []

    async def wait_for_then_ack(fut: Any, seconds: float | None) -> Any:
        try:
            return await real_wait_for(fut, seconds)
        except TimeoutError:
            hits.append(1)
            inv.ack(0, AckEntry("inv_1", 0, 0, fired))  # arrives during the cancellation
            raise

    monkeypatch.setattr(invoker_module.asyncio, "wait_for", wait_for_then_ack)

    async def scenario() -> None:
        inv.start(0, 1, start("napper"))
        for _ in range(100):
            await real_sleep(0.01)
            if any(isinstance(r, Complete) for r in writer.records):
                break

    real_sleep = asyncio.sleep
    asyncio.run(scenario())
    assert hits == [1], "the race was not hit"
    assert not any(isinstance(r, Suspend) for r in writer.records), "it suspended on a done entry"
    done = [r for r in writer.records if isinstance(r, Complete)]
    assert len(done) == 1 and done[0].result == b'"awake"'


def test_a_drain_lets_a_handler_in_a_step_finish_and_starts_nothing_new() -> None:
    async def scenario() -> None:
        inv, writer, _, _ = invoker(suspend_after_s=30)
        inv.start(0, 1, start("two_steps"))
        inv.start(0, 1, StartInvocation("inv_n", Target("svc", "napper"), b"", (), 0))
        await settle()
        drained = asyncio.get_running_loop().create_task(inv.drain(5))
        await settle()
        inv.start(0, 1, StartInvocation("inv_late", Target("svc", "two_steps"), b"", (), 0))
        assert "inv_late" not in inv.attempts, "a draining worker starts nothing"
        # The napper waited: it stopped at once. The step handler goes on to its end.
        for i, value in ((0, b"1"), (1, b"2")):
            inv.ack(0, AckEntry("inv_1", 0, i, JournalEntry(EntryKind.RUN, "ab"[i], value)))
            await settle()
        assert await asyncio.wait_for(drained, 1) == (2, 0)
        complete = [r for r in writer.records if isinstance(r, Complete)]
        assert [c.invocation_id for c in complete] == ["inv_1"]

    asyncio.run(scenario())


def test_a_drain_gives_up_on_a_step_that_outlasts_it() -> None:
    async def scenario() -> None:
        inv, _, _, _ = invoker()
        inv.start(0, 1, start("two_steps"))
        await settle()
        assert await inv.drain(0.2) == (0, 1), "never acknowledged: left to the next leader"
        await inv.shutdown()

    asyncio.run(scenario())
