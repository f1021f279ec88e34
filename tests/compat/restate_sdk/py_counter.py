"""A virtual object written with Restate's Python SDK (``restate-sdk``), served by hypercorn.

The test of issue 16 registers it with Perdure and drives 1,000 increments over 20 keys.
"""

import restate

counter = restate.VirtualObject("pyCounter")


@counter.handler()
async def add(ctx: restate.ObjectContext, n: int) -> int:
    value = (await ctx.get("value") or 0) + n
    ctx.set("value", value)
    return value


@counter.handler(kind="shared")
async def get(ctx: restate.ObjectSharedContext) -> int:
    return await ctx.get("value") or 0


app = restate.app(services=[counter])
