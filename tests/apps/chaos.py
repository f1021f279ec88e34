"""The chaos suite's handlers (tests/chaos): every step leaves a line in a ledger file.

``$PERDURE_CHAOS_LEDGER`` gets one line per execution of a step body (tab-separated: kind,
invocation's own id, step, token), appended by whichever worker runs it. The token (worker pid
and wall time) is also the step's result, so the handler's answer says which execution was
journaled. Once the handler holds a step's result it appends an ``ack`` line (when, and the
token): the suite counts from outside how often each step ran, and whether any ran again after
a handler held its result (never allowed: DESIGN.md invariant 4).
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from perdure import (
    Context,
    Endpoint,
    ObjectContext,
    ObjectSharedContext,
    Service,
    VirtualObject,
)

_LEDGER = os.environ.get("PERDURE_CHAOS_LEDGER", "/dev/null")


def _line(text: str) -> None:
    # One write() of a short line with O_APPEND: lines of several processes never interleave.
    fd = os.open(_LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _acked(ident: str, step: int, token: str) -> None:
    """The handler holds the step's result: from now on the step must never run again."""
    _line(f"ack\t{ident}\t{step}\t{time.time():.6f}/{os.getpid()}\t{token}\n")


def _effect(kind: str, ident: str, step: int) -> str:
    token = f"{time.time():.6f}/{os.getpid()}"
    _line(f"{kind}\t{ident}\t{step}\t{token}\n")
    return token


chaos = Service("chaos")
tally = VirtualObject("tally")


@chaos.handler()
async def steps(ctx: Context, req: dict) -> list[str]:
    """``req["n"]`` steps, each a side effect; returns their journaled tokens."""
    tokens = []
    for i in range(int(req["n"])):
        tokens.append(await ctx.run(f"s{i}", _effect, "step", req["id"], i))
        _acked(req["id"], i, tokens[-1])
    return tokens


@chaos.handler()
async def relay(ctx: Context, req: dict) -> dict:
    """A step, then a call to a tally on (most likely) another partition."""
    token = await ctx.run("before", _effect, "relay", req["id"], 0)
    _acked(req["id"], 0, token)
    value: int = await ctx.object_call(add, req["key"], 1)
    return {"token": token, "value": value}


@chaos.handler()
async def nap(ctx: Context, req: dict) -> dict:
    """Sleeps durably; returns when it was asked to and when it woke, both journaled."""
    asked = await ctx.run("asked", time.time)
    await ctx.sleep(timedelta(milliseconds=int(req["ms"])))
    woke = await ctx.run("woke", time.time)
    return {"asked": asked, "woke": woke}


@tally.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    value: int = await ctx.get("value") or 0
    ctx.set("value", value + delta)
    return value + delta


@tally.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    value: int = await ctx.get("value") or 0
    return value


app = Endpoint([chaos, tally])
