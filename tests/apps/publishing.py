"""Handlers that publish to Kafka topics, for the ctx.publish tests.

``emit`` publishes ``count`` records, each followed by a step, so a kill -9 lands between a
publish and the next step as often as in one. Effects of the steps go to the ledger with the
invocation id (see tests/apps/testapp.py).
"""

from __future__ import annotations

from datetime import timedelta

from perdure import Context, Endpoint, RetryPolicy, Service
from tests.apps.testapp import record

emitter = Service("emitter")


@emitter.handler()
async def emit(ctx: Context, req: dict) -> int:
    """Publishes ``count`` records ``{"id", "i"}`` keyed by ``id`` to ``topic`` (of
    ``cluster``, by default Perdure's own)."""
    for i in range(int(req["count"])):
        await ctx.publish(
            req["topic"],
            {"id": req["id"], "i": i},
            key=str(req["id"]),
            headers={"source": "emitter"},
            cluster=req.get("cluster", "default"),
        )
        await ctx.run(f"after-{i}", record, "emit", str(req["id"]), i, ctx.invocation_id)
    return int(req["count"])


@emitter.handler(retry=RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=50)))
async def emit_raw(ctx: Context, req: dict) -> None:
    """One record whose value is bytes as they are, to ``req["topic"]`` (which may not exist)."""
    await ctx.publish(
        req["topic"], b"\x00raw", key=b"\xffkey", cluster=req.get("cluster", "default")
    )


@emitter.handler()
async def bad_topic(ctx: Context) -> None:
    await ctx.publish("not a topic!", 1)


app = Endpoint([emitter])
