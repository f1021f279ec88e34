"""Handlers the benchmarks drive."""

from __future__ import annotations

from sdk import Context, Endpoint, Service

bench = Service("bench")


@bench.handler()
async def noop(ctx: Context, value: object) -> object:
    return value


@bench.handler()
async def steps(ctx: Context, n: int) -> int:
    total = 0
    for i in range(n):
        total += await ctx.run(f"step-{i}", lambda i=i: i)
    return total


app = Endpoint([bench])
