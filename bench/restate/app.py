"""The benchmark's five workloads on Restate's Python SDK (the twin of ``bench/app.py``).

It runs in the baseline's own virtualenv (``restate-sdk`` and ``hypercorn``, pinned in
``bench/restate/install.py``), never in Perdure's: ``hypercorn bench.restate.app:app``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import restate  # type: ignore[import-not-found]

bench = restate.Service("bench")


@bench.handler()
async def noop(ctx: Any, value: Any) -> Any:
    return value


@bench.handler()
async def three_steps(ctx: Any, value: int) -> int:
    def plus_one(x: int) -> int:
        return x + 1

    a = await ctx.run_typed("one", plus_one, x=value)
    b = await ctx.run_typed("two", plus_one, x=a)
    result: int = await ctx.run_typed("three", plus_one, x=b)
    return result


@bench.handler()
async def sleepy(ctx: Any, _value: Any) -> None:
    await ctx.sleep(timedelta(milliseconds=100))


counter = restate.VirtualObject("counter")


@counter.handler()
async def add(ctx: Any, delta: int) -> int:
    value: int = await ctx.get("value") or 0
    ctx.set("value", value + delta)
    return value + delta


app = restate.app(services=[bench, counter])
