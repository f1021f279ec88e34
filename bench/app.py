"""The handlers the benchmarks drive (one per workload)."""

from __future__ import annotations

from datetime import timedelta

from perdure import Context, Endpoint, ObjectContext, Service, VirtualObject

bench = Service("bench")


@bench.handler()
async def noop(ctx: Context, value: object) -> object:
    return value


@bench.handler()
async def three_steps(ctx: Context, value: int) -> int:
    a = await ctx.run("one", lambda: value + 1)
    b = await ctx.run("two", lambda: a + 1)
    return await ctx.run("three", lambda: b + 1)


@bench.handler()
async def steps(ctx: Context, n: int) -> int:
    total = 0
    for i in range(n):
        total += await ctx.run(f"step-{i}", lambda i=i: i)
    return total


@bench.handler()
async def sleepy(ctx: Context, _value: object) -> None:
    await ctx.sleep(timedelta(milliseconds=100))


counter = VirtualObject("counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    value: int = await ctx.get("value") or 0
    ctx.set("value", value + delta)
    return value + delta


app = Endpoint([bench, counter])
