"""Handlers that pass what their caller sends on to the SDK's edges (issue 31's inputs)."""

from __future__ import annotations

from sdk import Context, Endpoint, ObjectContext, Service, TerminalError, VirtualObject

counter = VirtualObject("counter")


@counter.handler()
async def add(ctx: ObjectContext, n: int) -> int:
    total = int(await ctx.get("total") or 0) + n
    ctx.set("total", total)
    return total


edges = Service("edges")


@edges.handler()
async def call_with_key(ctx: Context, key: str) -> int:
    return await ctx.object_call(add, key, 1)


@edges.handler()
async def resolve(ctx: Context, awakeable: str) -> None:
    await ctx.resolve_awakeable(awakeable, "x")


@edges.handler()
async def fail_with(ctx: Context, code: int) -> None:
    raise TerminalError("as asked", code)


@edges.handler()
async def wait(ctx: Context) -> str:
    _, answer = ctx.awakeable(str)
    return str(await answer)


app = Endpoint([counter, edges])
