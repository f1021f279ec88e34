"""Waiting durably: a timer, a delayed send, an awakeable a person completes, and a race.

perdure dev perdure.examples.approvals:app
curl -s localhost:8080/approvals/request/send -d '{"item": "laptop"}'     # -> invocationId
grep approval .perdure/ledger.txt                                      # the awakeable id
curl -s -X POST localhost:8080/restate/awakeables/<id>/resolve -d '"yes"'
curl -s localhost:8080/restate/invocation/<invocationId>/attach
curl -s -X DELETE localhost:8080/restate/invocation/<invocationId>    # or cancel it
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from perdure import Context, Endpoint, Service


def _note(*fields: object) -> None:
    ledger = Path(os.environ.get("PERDURE_EXAMPLE_LEDGER", ".perdure/ledger.txt"))
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a") as f:
        f.write("\t".join(map(str, fields)) + "\n")


approvals = Service("approvals")


@approvals.handler()
async def remind(ctx: Context, item: str) -> str:
    _note("reminder", item, ctx.invocation_id)
    return f"reminded about {item}"


@approvals.handler()
async def request(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    request_id = str(ctx.uuid())  # the same on every replay
    awakeable, answer = ctx.awakeable()
    await ctx.run("ask", _note, "approval", req["item"], awakeable)
    # Nudge the approver in a minute, without waiting for it (a scheduled invocation).
    await ctx.service_send(remind, req["item"], delay=timedelta(minutes=1))
    which, value = await ctx.select(answer=answer, timeout=ctx.sleep(timedelta(hours=1)))
    if which == "timeout":
        return {"request": request_id, "approved": False, "why": "no answer within an hour"}
    await ctx.sleep(timedelta(seconds=1))  # a durable pause before telling anyone
    return {"request": request_id, "approved": value == "yes", "answer": value}


app = Endpoint([approvals])
