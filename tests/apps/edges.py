"""Handlers that pass what their caller sends on to the SDK's edges (issue 31's inputs)."""

from __future__ import annotations

from datetime import timedelta

from perdure import (
    Context,
    Endpoint,
    ObjectContext,
    Service,
    TerminalError,
    VirtualObject,
    Workflow,
    WorkflowContext,
)

counter = VirtualObject("counter")


@counter.handler()
async def add(ctx: ObjectContext, n: int) -> int:
    total = int(await ctx.get("total") or 0) + n
    ctx.set("total", total)
    return total


@counter.handler()
async def set_named(ctx: ObjectContext, name: str) -> None:
    ctx.set(name, 1)


flow = Workflow("flow")


@flow.main()
async def run(ctx: WorkflowContext, name: str) -> str:
    return str(await ctx.promise(name).peek())


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


@edges.handler()
async def send_later(ctx: Context, days: int) -> str:
    handle = await ctx.object_send(add, "d", 1, delay=timedelta(days=days))
    return handle.invocation_id


app = Endpoint([counter, flow, edges])
