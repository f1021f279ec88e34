"""One scenario of every kind of entry, for tests/integration/test_runtime_vs_cluster.py: state,
a durable call, a timer, an awakeable, and a long sleep to cancel.

Awakeable ids go to ``$PERDURE_EXAMPLE_LEDGER`` (``awakeable``, tag, id), where a test reads
them over HTTP and in the test runtime alike.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from perdure import Context, Endpoint, ObjectContext, Service, VirtualObject


def note(*fields: object) -> None:
    ledger = Path(os.environ.get("PERDURE_EXAMPLE_LEDGER", ".perdure/ledger.txt"))
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a") as f:
        f.write("\t".join(map(str, fields)) + "\n")


accounts = VirtualObject("accounts")


@accounts.handler()
async def deposit(ctx: ObjectContext, amount: int) -> int:
    total = (await ctx.get("total") or 0) + amount
    ctx.set("total", total)
    ctx.set("last", amount)
    return int(total)


trips = Service("trips")


@trips.handler()
async def plan(ctx: Context, who: str) -> dict:
    quote = await ctx.run("quote", lambda: len(who) * 10)
    total = await ctx.object_call(deposit, who, quote)
    await ctx.sleep(timedelta(milliseconds=300))
    awakeable, answer = ctx.awakeable()
    await ctx.run("ask", note, "awakeable", who, awakeable)
    reply = await answer
    return {"who": who, "quote": quote, "total": total, "reply": reply}


@trips.handler()
async def linger(ctx: Context) -> str:
    await ctx.sleep(timedelta(days=1))
    return "late"


app = Endpoint([accounts, trips])
