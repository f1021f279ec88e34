"""Handlers fed by Kafka subscriptions, for the subscription tests.

Effects go to ``$PERDURE_EXAMPLE_LEDGER`` with the invocation id, so that a test counts each
record's effect from outside the worker (distinct ids: a step may run again until journaled).
"""

from __future__ import annotations

import asyncio
import os

import pydantic

from perdure import (
    Context,
    Endpoint,
    ObjectContext,
    ObjectSharedContext,
    Service,
    Subscribe,
    VirtualObject,
)
from tests.apps.testapp import record

tally = VirtualObject("tally")


@tally.handler()
async def add(ctx: ObjectContext, event: dict) -> int:
    """Appends the record's offset to the key's list: the list shows order and count."""
    headers = ctx.headers()
    offsets: list[int] = await ctx.get("offsets") or []
    offset = int(headers["kafka.offset"])
    offsets.append(offset)
    ctx.set("offsets", offsets)
    await ctx.run("effect", record, "tally", ctx.key(), offset, ctx.invocation_id)
    return len(offsets)


@tally.handler(kind="shared")
async def offsets(ctx: ObjectSharedContext) -> list[int]:
    return await ctx.get("offsets") or []


feed = Service("feed")


@feed.handler()
async def note(ctx: Context, event: dict) -> None:
    """Records when each record ran; slow enough that parallel records overlap."""
    h = ctx.headers()
    await ctx.run("start", record, "note-start", h["kafka.partition"], h["kafka.offset"])
    await asyncio.sleep(event.get("sleep", 0.05))
    await ctx.run("end", record, "note-end", h["kafka.partition"], h["kafka.offset"])


class Payment(pydantic.BaseModel):
    order_id: str
    amount: int = pydantic.Field(gt=0)


@feed.handler()
async def pay(ctx: Context, payment: Payment) -> str:
    """Typed input: a record that does not validate fails for good (a dead letter)."""
    await ctx.run("pay", record, "pay", payment.order_id, payment.amount)
    return payment.order_id


@feed.handler()
async def raw(ctx: Context, payload: bytes) -> int:
    """Takes the record's bytes as they are; shows the headers it got."""
    h = ctx.headers()
    await ctx.run(
        "raw", record, "raw", payload.hex(), h.get("kafka.key"), h.get("trace"), h["kafka.topic"]
    )
    return len(payload)


declared = Service("declared")


@declared.handler(subscribe=Subscribe(os.environ.get("PERDURE_TEST_DECLARED_TOPIC", "declared")))
async def seen(ctx: Context, event: dict) -> None:
    await ctx.run("seen", record, "declared", event.get("n"), ctx.headers()["kafka.offset"])


app = Endpoint([tally, feed, declared])
