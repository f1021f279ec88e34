"""Handlers for integration tests: failures, retries, typed inputs, slow steps.

Side effects are appended to ``$PERDURE_EXAMPLE_LEDGER`` (one line per effect) so that tests can
count them from outside the worker process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from datetime import timedelta
from pathlib import Path

import pydantic

from perdure import (
    Context,
    Endpoint,
    ObjectContext,
    ObjectSharedContext,
    RetryPolicy,
    RunOptions,
    Service,
    TerminalError,
    VirtualObject,
)
from perdure.examples.booking import booking
from perdure.examples.cart import cart
from perdure.examples.payments import payments
from perdure.examples.signup import signup


def record(*fields: object) -> None:
    ledger = Path(os.environ["PERDURE_EXAMPLE_LEDGER"])
    with ledger.open("a") as f:
        f.write("\t".join(map(str, fields)) + "\n")
        f.flush()
        os.fsync(f.fileno())


def count(*prefix: str) -> int:
    ledger = Path(os.environ["PERDURE_EXAMPLE_LEDGER"])
    if not ledger.exists():
        return 0
    want = "\t".join(prefix)
    return sum(1 for line in ledger.read_text().splitlines() if line.startswith(want))


class Order(pydantic.BaseModel):
    order_id: str
    amount: int = pydantic.Field(gt=0)


@dataclasses.dataclass
class Receipt:
    order_id: str
    total: int


tests = Service("tests")


@tests.handler()
async def conflict(ctx: Context, what: str) -> str:
    raise TerminalError(f"{what} already exists", status_code=409)


@tests.handler(retry=RetryPolicy(initial_interval=timedelta(milliseconds=50)))
async def flaky(ctx: Context, key: str) -> dict:
    """Fails its first two attempts, then succeeds."""
    record("flaky-attempt", key)
    if count("flaky-attempt", key) <= 2:
        raise RuntimeError(f"transient failure {count('flaky-attempt', key)}")
    return {"key": key, "attempts": count("flaky-attempt", key)}


@tests.handler(retry=RetryPolicy(max_attempts=3, initial_interval=timedelta(milliseconds=20)))
async def always_fails(ctx: Context) -> None:
    raise RuntimeError("boom")


@tests.handler()
async def typed(ctx: Context, order: Order) -> Receipt:
    return Receipt(order.order_id, order.amount * 2)


@tests.handler()
async def step_retries(ctx: Context, key: str) -> int:
    def attempt() -> int:
        record("step-attempt", key)
        n = count("step-attempt", key)
        if n < 3:
            raise RuntimeError("not yet")
        return n

    return await ctx.run("attempt", attempt, options=RunOptions(max_attempts=5))


@tests.handler()
async def idempotency_keys(ctx: Context) -> list[str]:
    async def key() -> str:
        return ctx.step_idempotency_key()

    return [await ctx.run("a", key), await ctx.run("b", key)]


@tests.handler()
async def echo(ctx: Context, value: object) -> object:
    return value


@tests.handler()
async def no_input(ctx: Context) -> str:
    return ctx.invocation_id


@tests.handler()
async def slow_steps(ctx: Context, key: str) -> int:
    """Two steps with a pause between them, for killing workers mid-invocation."""
    pause = float(os.environ.get("PERDURE_TEST_PAUSE", "0.5"))
    await ctx.run("one", _step, "slow-one", key, ctx.invocation_id)
    await asyncio.sleep(pause * 4 if key.startswith("long") else pause)
    await ctx.run("two", _step, "slow-two", key, ctx.invocation_id)
    return 2


def _step(name: str, key: str, invocation_id: str) -> None:
    """Records a step's execution with the process that ran it and when (wall clock, ns)."""
    record(name, key, os.getpid(), time.time_ns(), invocation_id)


counter = VirtualObject("counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    value: int = await ctx.get("value") or 0
    ctx.set("value", value + delta)
    return value + delta


@counter.handler()
async def slow_add(ctx: ObjectContext, delta: int) -> int:
    """Holds the key for a while, so that others queue behind it."""
    value: int = await ctx.get("value") or 0
    record("holding", ctx.key())  # a test knows the key is held from here on
    await asyncio.sleep(float(os.environ.get("PERDURE_TEST_PAUSE", "2")))
    ctx.set("value", value + delta)
    return value + delta


@counter.handler(retry=RetryPolicy(initial_interval=timedelta(milliseconds=50)))
async def set_then_fail(ctx: ObjectContext) -> int:
    """Writes, then fails its first attempt: the retry must see the state as it was."""
    seen: int = await ctx.get("value") or 0
    ctx.set("value", seen + 100)
    record("set-then-fail", ctx.key(), seen)
    if count("set-then-fail", ctx.key()) == 1:
        raise RuntimeError("fail after set")
    return seen


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    value: int = await ctx.get("value") or 0
    return value


@counter.handler(kind="shared")
async def sneaky_set(ctx: ObjectSharedContext) -> None:
    ctx.set("value", -1)


@counter.handler()
async def typed_add(ctx: ObjectContext, order: Order) -> int:
    value: int = await ctx.get("value") or 0
    ctx.set("value", value + order.amount)
    return value + order.amount


@counter.handler()
async def call_myself(ctx: ObjectContext) -> int:
    return await ctx.object_call(add, ctx.key(), 1)


@tests.handler()
async def fan_out(ctx: Context, key: str) -> dict:
    """A send, then a call, to the same object key: they arrive in that order."""
    handle = await ctx.object_send(add, key, 1)
    total = await ctx.object_call(add, key, 10)
    status = await ctx.workflow_call(status_of_signup, key)
    return {"sent": handle.invocation_id, "total": total, "signup": status}


@tests.handler()
async def call_failing(ctx: Context) -> str:
    try:
        await ctx.service_call(conflict, "thing")
    except TerminalError as err:
        return f"{err.status_code}: {err.message}"
    return "no error"


@tests.handler()
async def sleeper(ctx: Context, ms: int) -> dict:
    """Sleeps durably; records when it was asked to and when it woke."""
    asked = await ctx.run("asked", time.time)
    await ctx.sleep(timedelta(milliseconds=ms))
    woke = await ctx.run("woke", time.time)
    record("woke", ctx.invocation_id, asked, woke)
    return {"asked": asked, "woke": woke}


@tests.handler()
async def dice(ctx: Context) -> list:
    """Draws, sleeps past the suspension point (a replay), draws again: the same values."""
    values = [ctx.random().random(), str(ctx.uuid()), await ctx.time()]
    record("dice", ctx.invocation_id, *values)
    await ctx.sleep(timedelta(milliseconds=1500))
    record("dice-after", ctx.invocation_id, *values)
    return values


@tests.handler()
async def delayed_echo(ctx: Context, ms: int) -> str:
    handle = await ctx.service_send(
        echo, {"sent_at": await ctx.time()}, delay=timedelta(milliseconds=ms)
    )
    return handle.invocation_id


@tests.handler()
async def stamp(ctx: Context, key: str) -> float:
    """Records when it ran."""
    now = time.time()
    await ctx.run("stamp", record, "stamp", key, now)
    return now


@tests.handler()
async def wait_awakeable(ctx: Context, tag: str) -> str:
    """Publishes an awakeable id in the ledger and waits for someone to complete it."""
    awakeable, value = ctx.awakeable()
    await ctx.run("publish", record, "awakeable", tag, awakeable)
    try:
        return f"resolved: {await value}"
    except TerminalError as err:
        return f"rejected: {err.message}"


@tests.handler()
async def resolve_other(ctx: Context, awakeable: str) -> str:
    try:
        await ctx.resolve_awakeable(awakeable, "from a handler")
    except TerminalError as err:
        return f"{err.status_code}: {err.message}"
    return "done"


@tests.handler()
async def race(ctx: Context, timeout_ms: int) -> str:
    """An awakeable against a timer; then a sleep that forces a replay of the decision."""
    awakeable, done = ctx.awakeable()
    await ctx.run("publish", record, "race-awakeable", ctx.invocation_id, awakeable)
    which, _ = await ctx.select(done=done, timeout=ctx.sleep(timedelta(milliseconds=timeout_ms)))
    record("race", ctx.invocation_id, which)
    await ctx.sleep(timedelta(milliseconds=1500))
    record("race-after", ctx.invocation_id, which)
    return which


@tests.handler()
async def wait_on_child(ctx: Context, tag: str) -> str:
    """Calls a handler that waits on an awakeable; a cancel must reach that child too."""
    try:
        return str(await ctx.service_call(wait_awakeable, tag))
    except TerminalError as err:
        await ctx.run("compensate", record, "compensated", tag)
        raise TerminalError(f"parent: {err.message}", err.status_code) from None


@tests.handler()
async def cancel_other(ctx: Context, invocation_id: str) -> str:
    try:
        await ctx.cancel_invocation(invocation_id)
    except TerminalError as err:
        return f"{err.status_code}: {err.message}"
    return "cancelled"


@tests.handler(retry=RetryPolicy(max_attempts=100, initial_interval=timedelta(seconds=3)))
async def raises_every_time(ctx: Context, tag: str) -> str:
    """Fails every attempt after a first step, with a long back-off (cancel must stop it)."""
    await ctx.run("first", record, "raiser-step", tag)
    record("raiser-attempt", tag)
    raise RuntimeError(f"attempt {count('raiser-attempt', tag)} fails")


status_of_signup = signup.handlers["status"].fn

app = Endpoint([payments, tests, counter, cart, signup, booking])
