"""TestRuntime: the README's examples and the runtime's promises, in process, on virtual time.

No broker: these run the real state machine, invoker and SDK over the in-memory log. Each test
bounds its wall time (the point of the runtime is that days of timers take milliseconds).
tests/integration/test_runtime_vs_cluster.py runs the same scenario over HTTP on a real broker
and compares.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from perdure import Context, Endpoint, Service, TerminalError
from perdure.engine.model import EntryKind
from perdure.engine.records import Invoke, ProposeEntry, TimerFired
from perdure.examples import approvals, booking, cart, payments, signup
from perdure.partitions.testing import StuckError, TestRuntime

ORDER = {"orderId": "o-1", "userId": "u-7", "amount": 42}
WALL_S = 1.0
"""Each scenario's wall-time bound (issue 17: well under a second each)."""


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.txt"
    monkeypatch.setenv("PERDURE_EXAMPLE_LEDGER", str(path))
    monkeypatch.setenv("PERDURE_EXAMPLE_MAILBOX", str(tmp_path / "mailbox"))
    return path


def lines(ledger: Path) -> Counter[str]:
    return Counter(ledger.read_text().splitlines() if ledger.exists() else [])


class Wall:
    """Measures a scenario's wall time."""

    def __enter__(self) -> Wall:
        self.began = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.began
        print(f"wall {self.seconds * 1000:.1f} ms")


# -- the README's examples, with a crash at every step ------------------------------------------


@pytest.mark.asyncio
async def test_payment_survives_a_crash_at_every_step(ledger: Path) -> None:
    with Wall() as wall:
        async with TestRuntime(payments.app) as rt:
            rt.crash_every_step()
            out = await rt.call(payments.process_payment, ORDER)
    assert out == {"orderId": "o-1", "chargeId": "ch-u-7-42", "status": "completed"}
    assert len(rt.crashes) == 8, [str(c) for c in rt.crashes]  # before and after each step
    # A crash after a step's action and before its result is journaled runs it again (what
    # crash injection is for: payments' fake APIs do not deduplicate); after: never.
    assert lines(ledger) == {
        "reserve\to-1": 2,
        "charge\tu-7\t42": 2,
        "confirm\to-1\tch-u-7-42": 2,
        "email\tu-7\tOrder confirmed!": 2,
    }
    assert wall.seconds < WALL_S


@pytest.mark.asyncio
async def test_each_step_runs_once_when_crashes_come_after_journaling(ledger: Path) -> None:
    async with TestRuntime(payments.app) as rt:
        rt.crash_every_step(before_journal=False)
        sent = await rt.send(payments.process_payment, ORDER)
        assert (await sent.result())["status"] == "completed"
        kinds = [(e.kind, e.name) for e in rt.journal(sent.id)]
    assert kinds == [
        (EntryKind.RUN, "reserve-inventory"),
        (EntryKind.RUN, "charge-payment"),
        (EntryKind.RUN, "confirm-order"),
        (EntryKind.RUN, "notify"),
    ]
    assert set(lines(ledger).values()) == {1}, lines(ledger)
    assert len(rt.crashes) == 4


@pytest.mark.asyncio
async def test_cart_checks_out_through_a_durable_call_with_crashes(ledger: Path) -> None:
    with Wall() as wall:
        async with TestRuntime(cart.app) as rt:
            rt.crash_every_step(before_journal=False)
            assert await rt.call(cart.add_item, {"sku": "book", "price": 12}, key="ann") == {
                "items": 1
            }
            await rt.call(cart.add_item, {"sku": "pen", "price": 3}, key="ann")
            assert rt.state(cart.cart.name, "ann")["items"][1]["sku"] == "pen"
            assert [i["sku"] for i in await rt.call(cart.get_items, key="ann")] == ["book", "pen"]
            out = await rt.call(cart.checkout, key="ann")
            assert out["chargeId"] == "ch-ann-15"
            assert rt.state(cart.add_item, "ann") == {}, "cleared after checkout"
            with pytest.raises(TerminalError) as empty:
                await rt.call(cart.checkout, key="ann")
    assert empty.value.status_code == 400 and "empty" in empty.value.message
    assert lines(ledger)["charge\tann\t15"] == 1
    assert wall.seconds < WALL_S


@pytest.mark.asyncio
async def test_signup_waits_for_its_promise_and_survives_crashes(ledger: Path) -> None:
    with Wall() as wall:
        async with TestRuntime(signup.app) as rt:
            rt.crash_every_step(before_journal=False)
            run = await rt.send(signup.run, {"email": "ann@x.org"}, key="ann")
            await rt.settle()
            assert await rt.call(signup.status, key="ann") == "waiting for verification"
            code = (ledger.parent / "mailbox" / "ann@x.org").read_text()
            assert await rt.call(signup.verify, code, key="ann") == "thanks"
            assert await run.result() == {"user": "ann", "email": "ann@x.org", "verified": True}
    assert lines(ledger)[f"mail\tann@x.org\t{code}"] == 1
    assert wall.seconds < WALL_S


@pytest.mark.asyncio
async def test_booking_saga_compensates_once_each_through_crashes(ledger: Path) -> None:
    with Wall() as wall:
        async with TestRuntime(booking.app) as rt:
            rt.crash_every_step()  # the fake APIs deduplicate by step idempotency key
            with pytest.raises(TerminalError) as failed:
                await rt.call(booking.book_trip, {"tripId": "t1", "failCar": True})
    assert failed.value.status_code == 409
    booked = Counter(line.split("\t")[0] for line in lines(ledger))
    # The car's compensation is registered before its booking is tried, as in the seed.
    assert booked == {
        "book-flight": 1,
        "book-hotel": 1,
        "cancel-car": 1,
        "cancel-hotel": 1,
        "cancel-flight": 1,
    }, booked
    assert wall.seconds < WALL_S


@pytest.mark.asyncio
async def test_an_hour_timeout_and_a_delayed_send_take_no_time(ledger: Path) -> None:
    with Wall() as wall:
        async with TestRuntime(approvals.app) as rt:
            before = rt.now
            out = await rt.call(approvals.request, {"item": "laptop"})
            assert out["approved"] is False and out["why"] == "no answer within an hour"
            assert rt.now - before >= timedelta(hours=1)
    reminders = [line for line in lines(ledger) if line.startswith("reminder\tlaptop")]
    assert len(reminders) == 1, "the send delayed by a minute ran within the hour"
    assert wall.seconds < WALL_S


@pytest.mark.asyncio
async def test_an_awakeable_resolved_by_the_test_before_its_timeout(ledger: Path) -> None:
    async with TestRuntime(approvals.app) as rt:
        sent = await rt.send(approvals.request, {"item": "desk"})
        await rt.settle()  # time stands still: the test is not waiting for an outcome
        (awakeable,) = rt.awakeables(sent.id)
        await rt.resolve_awakeable(awakeable, "yes")
        with pytest.raises(TerminalError) as twice:  # it still runs (a durable second's pause)
            await rt.resolve_awakeable(awakeable, "no")
        assert twice.value.status_code == 409, "completed already"
        out = await sent.result()
        assert out["approved"] is True and out["answer"] == "yes"
        with pytest.raises(TerminalError) as after:
            await rt.resolve_awakeable(awakeable, "no")
        assert after.value.status_code == 409, "its journal is kept (until retention ends)"


# -- time -----------------------------------------------------------------------------------------

clock = Service("clock")


@clock.handler()
async def month(ctx: Context) -> float:
    before = await ctx.time()
    await ctx.sleep(timedelta(days=30))
    return await ctx.time() - before


@clock.handler()
async def nap(ctx: Context, minutes: int) -> str:
    await ctx.sleep(timedelta(minutes=minutes))
    return "awake"


CLOCK = Endpoint([clock])


@pytest.mark.asyncio
async def test_a_thirty_day_sleep_takes_milliseconds_and_ctx_time_follows() -> None:
    with Wall() as wall:
        async with TestRuntime(CLOCK) as rt:
            rt.crash_every_step()
            slept = await rt.call(month)
    assert 30 * 86400 <= slept < 30 * 86400 + 5
    assert wall.seconds < WALL_S


@pytest.mark.asyncio
async def test_without_auto_advance_timers_wait_for_advance() -> None:
    async with TestRuntime(CLOCK, auto_advance=False) as rt:
        sent = await rt.send(nap, 10)
        await rt.advance(timedelta(minutes=9))
        assert not any(isinstance(r.command, TimerFired) for r in rt.records())
        await rt.advance(timedelta(minutes=1))
        assert await sent.result() == "awake"
        fired = [r for r in rt.records() if isinstance(r.command, TimerFired)]
        started = next(r for r in rt.records() if isinstance(r.command, Invoke))
        assert len(fired) == 1 and fired[0].timestamp_ms - started.timestamp_ms == 600_000


@pytest.mark.asyncio
async def test_a_delayed_send_starts_when_its_time_comes() -> None:
    async with TestRuntime(CLOCK, auto_advance=False) as rt:
        sent = await rt.send(nap, 0, delay=timedelta(days=2))
        await rt.advance(timedelta(days=1))
        assert rt.journal(sent.id) == []
        await rt.advance(timedelta(days=1))
        assert await sent.result() == "awake"


# -- what crash injection finds ------------------------------------------------------------------

flawed = Service("flawed")
effects: list[str] = []
runs = Counter[str]()


@flawed.handler()
async def charges_outside_a_step(ctx: Context, who: str) -> str:
    effects.append(who)  # not in ctx.run: done again on every replay
    await ctx.run("log", lambda: None)
    await ctx.run("notify", lambda: None)
    return "ok"


@flawed.handler()
async def decides_by_attempt(ctx: Context) -> str:
    runs["decides"] += 1
    name = "first" if runs["decides"] == 1 else "second"  # not deterministic on replay
    await ctx.run(name, lambda: 1)
    await ctx.run("then", lambda: 2)
    return name


@flawed.handler()
async def waits_for_ever(ctx: Context) -> str:
    _, value = ctx.awakeable()
    return str(await value)


@flawed.handler()
async def fails_twice(ctx: Context) -> int:
    runs["fails"] += 1
    if runs["fails"] < 3:
        raise RuntimeError("flaky")
    return runs["fails"]


FLAWED = Endpoint([flawed])


@pytest.mark.asyncio
async def test_crash_injection_finds_a_side_effect_outside_a_step() -> None:
    effects.clear()
    async with TestRuntime(FLAWED) as rt:
        assert await rt.call(charges_outside_a_step, "a") == "ok"
        assert effects == ["a"], "without crashes it looks fine"
        rt.crash_every_step(before_journal=False)
        assert await rt.call(charges_outside_a_step, "b") == "ok"
    assert effects.count("b") == 3, "one run and one replay per crash: found"


@pytest.mark.asyncio
async def test_a_handler_that_replays_differently_fails_naming_the_entry() -> None:
    runs.clear()
    async with TestRuntime(FLAWED) as rt:
        rt.crash_after("first")
        with pytest.raises(TerminalError) as mismatch:
            await rt.call(decides_by_attempt)
    assert "journal mismatch at entry 0" in mismatch.value.message
    assert "'first'" in mismatch.value.message and "'second'" in mismatch.value.message


@pytest.mark.asyncio
async def test_a_call_nothing_can_finish_is_a_stuck_error_naming_what_it_waits_for() -> None:
    async with TestRuntime(FLAWED, timeout=timedelta(seconds=0.5)) as rt:
        with pytest.raises(StuckError, match="awakeable"):
            await rt.call(waits_for_ever)


@pytest.mark.asyncio
async def test_retries_back_off_on_the_virtual_clock() -> None:
    runs.clear()
    with Wall() as wall:
        async with TestRuntime(FLAWED) as rt:
            before = rt.now
            assert await rt.call(fails_twice) == 3
            assert rt.now - before >= timedelta(milliseconds=300), "100 ms, then 200 ms"
    assert wall.seconds < WALL_S


@pytest.mark.asyncio
async def test_cancelling_a_sleeping_invocation() -> None:
    async with TestRuntime(CLOCK) as rt:
        sent = await rt.send(nap, 60 * 24)
        await rt.settle()
        await rt.cancel(sent.id)
        with pytest.raises(TerminalError) as cancelled:
            await sent.result()
    assert cancelled.value.status_code == 409


@pytest.mark.asyncio
async def test_idempotency_keys_and_the_records_the_log_holds(ledger: Path) -> None:
    async with TestRuntime(payments.app) as rt:
        first = await rt.call(payments.process_payment, ORDER, idempotency_key="k")
        again = await rt.call(payments.process_payment, ORDER, idempotency_key="k")
        assert first == again
        proposals = [r for r in rt.records() if isinstance(r.command, ProposeEntry)]
    assert len(proposals) == 4, "the second call ran nothing"
    assert lines(ledger)["charge\tu-7\t42"] == 1


@pytest.fixture
def perdure_app() -> Endpoint:
    return payments.app


@pytest.mark.asyncio
async def test_the_pytest_fixture(perdure_runtime: TestRuntime, ledger: Path) -> None:
    out = await perdure_runtime.call(payments.process_payment, ORDER)
    assert out["status"] == "completed"
