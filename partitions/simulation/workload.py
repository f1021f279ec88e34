"""The simulator's generated workload: its handlers, and a ledger of what they did.

The handlers use every kind of durable operation — steps, state, calls, delayed sends, sleeps,
awakeables, promises, publishes — and tell the :class:`Ledger` what only the outside world can
see: when a step's action ran and when a handler first got its result. Their results are
chosen so that a sequential model can predict them (:mod:`partitions.simulation.checks`):

- ``steps.chain`` sums ``i * i + 1`` over its steps (then may sleep, publish, fail or retry);
- ``counter.add`` adds one, so the answers for one key are exactly 1..m, each once;
- ``counter.rogue`` is a shared handler that forces a state write (as a buggy Restate SDK
  could send one): the engine must fail it with a 400 and change nothing;
- ``caller.fan`` calls ``counter.add`` on another partition and sends a delayed ``chain``;
- ``flow.run`` waits for a durable promise that ``flow.signal`` resolves;
- ``waiter.wait`` waits for an awakeable the world resolves.

Step actions are coroutines (a sync one would run in a thread, outside the seeded schedule).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from perdure.engine.model import StateOp, StateOpKind
from perdure.sdk import (
    Context,
    Endpoint,
    ObjectContext,
    ObjectSharedContext,
    RetryPolicy,
    Service,
    TerminalError,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)
from perdure.sdk.hosting import encode

PUBLISH_TOPIC = "sim.out"
CURRENT_WORKER: contextvars.ContextVar[str] = contextvars.ContextVar("sim_worker", default="?")
"""The simulated worker a task belongs to (handler tasks inherit it from their worker's loop)."""


@dataclass
class Execution:
    """One run of a step's action."""

    invocation_id: str
    step: str
    at_ms: int
    worker: str


@dataclass
class Ledger:
    """What the handlers did, as the world outside the engine saw it.

    Args:
        now_ms: the world's clock.
        pause: awaited at each handler's pause points (slow handlers, paused workers).
        on_awakeable: called with each awakeable id a handler registers.
    """

    now_ms: Callable[[], int]
    pause: Callable[[], Any]
    on_awakeable: Callable[[str, str], None]
    executions: list[Execution] = field(default_factory=list)
    first_ack: dict[tuple[str, str], int] = field(default_factory=dict)
    flaky_runs: dict[str, int] = field(default_factory=dict)

    async def step(self, invocation_id: str, name: str, value: int) -> int:
        self.executions.append(Execution(invocation_id, name, self.now_ms(), CURRENT_WORKER.get()))
        return value

    async def flaky(self, invocation_id: str) -> int:
        """Raises the first time it runs for an invocation (a retried attempt goes on)."""
        runs = self.flaky_runs[invocation_id] = self.flaky_runs.get(invocation_id, 0) + 1
        if runs == 1:
            raise RuntimeError("a transient failure")
        return 0

    def acked(self, invocation_id: str, name: str) -> None:
        self.first_ack.setdefault((invocation_id, name), self.now_ms())

    async def awakeable(self, invocation_id: str, awakeable_id: str) -> str:
        self.on_awakeable(invocation_id, awakeable_id)
        return awakeable_id


def chain_value(n: int, publish: bool = False) -> int:
    """What ``steps.chain`` returns for ``n`` steps (and a publish, which adds a step of 1)."""
    return sum(i * i + 1 for i in range(n)) + (1 if publish else 0)


def build(ledger: Ledger) -> Endpoint:
    """The workload's services, bound to ``ledger``."""
    steps = Service("steps")
    counter = VirtualObject("counter")
    caller = Service("caller")
    flow = Workflow("flow")
    waiter = Service("waiter")
    quick = RetryPolicy(initial_interval=timedelta(milliseconds=50), max_attempts=50)

    async def run_step(ctx: Context, name: str, value: int) -> int:
        await ledger.pause()
        out: int = await ctx.run(name, ledger.step, ctx.invocation_id, name, value)
        ledger.acked(ctx.invocation_id, name)
        return out

    @steps.handler(retry=quick)
    async def chain(ctx: Context, spec: dict[str, Any]) -> int:
        total = 0
        for i in range(spec["n"]):
            total += await run_step(ctx, f"s{i}", i * i + 1)
        if spec.get("flaky"):
            await ctx.run("flaky", ledger.flaky, ctx.invocation_id)
        if spec.get("sleep_ms"):
            await ctx.sleep(timedelta(milliseconds=spec["sleep_ms"]))
            await ledger.pause()
        if spec.get("publish"):
            # A step and the publish after it in flight together: the publish's transaction
            # must not overtake the step's entry (they go through two producers).
            inv = ctx.invocation_id
            got, _ = await asyncio.gather(
                ctx.run("before-publish", ledger.step, inv, "before-publish", 1),
                ctx.publish(PUBLISH_TOPIC, {"n": spec["n"]}, key=inv),
            )
            total += got
        if spec.get("fail"):
            raise TerminalError("asked to fail", 422)
        return total

    @counter.handler(retry=quick)
    async def add(ctx: ObjectContext, n: int) -> int:
        value = int(await ctx.get("v") or 0) + n
        await ledger.pause()
        ctx.set("v", value)
        await run_step(ctx, "add", value)
        return value

    @counter.handler(kind="shared")
    async def rogue(ctx: ObjectSharedContext) -> int:
        # What a buggy SDK could send: a state write in a shared handler's journal entry.
        ctx._change(StateOp(StateOpKind.SET, "v", encode(-1000)))
        await run_step(ctx, "rogue", 0)
        return 0

    @caller.handler(retry=quick)
    async def fan(ctx: Context, spec: dict[str, Any]) -> int:
        got: int = await ctx.object_call(add, spec["key"], 1)
        delay = timedelta(milliseconds=spec["delay_ms"])
        await ctx.service_send(chain, {"n": 1}, delay=delay)
        await run_step(ctx, "after-call", got)
        return got

    @flow.main(retry=quick)
    async def run(ctx: WorkflowContext, x: int) -> int:
        v: int = await ctx.promise("p", int).value()
        await run_step(ctx, "got", v)
        return v + x

    @flow.handler()
    async def signal(ctx: WorkflowSharedContext, v: int) -> None:
        await ctx.promise("p", int).resolve(v)

    @waiter.handler(retry=quick)
    async def wait(ctx: Context, x: int) -> str:
        awakeable, answer = ctx.awakeable(str)
        await ctx.run("register", ledger.awakeable, ctx.invocation_id, awakeable)
        value = await answer
        await run_step(ctx, "woken", 0)
        return f"{x}:{value}"

    return Endpoint([steps, counter, caller, flow, waiter])
