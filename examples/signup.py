"""Sign-up with e-mail verification: a workflow that waits on a promise resolved by a click.

.venv/bin/perdure dev perdure.examples.signup:app
curl -s localhost:8080/signup/alice/run/send -d '{"email": "alice@example.com"}'
curl -s -X POST localhost:8080/signup/alice/status        # "waiting for verification"
code=$(cat .perdure/mailbox/alice@example.com)             # the fake mailer's "mail"
curl -s localhost:8080/signup/alice/verify -d "\"$code\""
curl -s localhost:8080/restate/workflow/signup/alice/attach
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from perdure import Endpoint, TerminalError, Workflow, WorkflowContext, WorkflowSharedContext

signup = Workflow("signup")


def send_mail(address: str, code: str) -> None:
    """A fake mailer: the code goes to .perdure/mailbox/<address> (where the README reads it),
    to the worker's output, and to $PERDURE_EXAMPLE_LEDGER (default .perdure/ledger.txt)."""
    ledger = Path(os.environ.get("PERDURE_EXAMPLE_LEDGER", ".perdure/ledger.txt"))
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a") as f:
        f.write(f"mail\t{address}\t{code}\n")
    mailbox = Path(os.environ.get("PERDURE_EXAMPLE_MAILBOX", ".perdure/mailbox"))
    mailbox.mkdir(parents=True, exist_ok=True)
    (mailbox / address).write_text(code)
    print(f"[mail to {address}] your verification code is {code}", flush=True)


@signup.main()
async def run(ctx: WorkflowContext, user: dict[str, Any]) -> dict[str, Any]:
    code = await ctx.run("make-code", lambda: ctx.invocation_id[-6:])
    ctx.set("status", "waiting for verification")
    await ctx.run("send-mail", send_mail, user["email"], code)
    clicked = await ctx.promise("verified").value()
    if clicked != code:
        ctx.set("status", "rejected")
        raise TerminalError("wrong verification code", status_code=403)
    ctx.set("status", "verified")
    return {"user": ctx.key(), "email": user["email"], "verified": True}


@signup.handler()
async def verify(ctx: WorkflowSharedContext, code: str) -> str:
    await ctx.promise("verified").resolve(code)
    return "thanks"


@signup.handler()
async def status(ctx: WorkflowSharedContext) -> str | None:
    value: str | None = await ctx.get("status")
    return value


app = Endpoint([signup])
