"""The seed scenario: a payment with four durable steps against fake external APIs.

Each fake API appends one line per call to ``$PERDURE_EXAMPLE_LEDGER`` (default
``.perdure/ledger.txt``) so that tests and people can count side effects from outside.

    perdure dev perdure.examples.payments:app
    curl -s localhost:8080/payments/process_payment \\
         -H 'content-type: application/json' \\
         -d '{"orderId": "o-1", "userId": "u-7", "amount": 42}'
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from perdure import Context, Endpoint, Service, TerminalError


def _record(api: str, *fields: object) -> None:
    ledger = Path(os.environ.get("PERDURE_EXAMPLE_LEDGER", ".perdure/ledger.txt"))
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a") as f:
        f.write("\t".join([api, *map(str, fields)]) + "\n")
        f.flush()
        os.fsync(f.fileno())


async def _pause(step: str) -> None:
    """Lets fault tests hold a step open: PERDURE_EXAMPLE_SLOW=charge:3 waits 3 s in charge
    (awaiting, as an async API call would: a blocking sleep would stop the whole event loop)."""
    spec = os.environ.get("PERDURE_EXAMPLE_SLOW", "")
    name, _, seconds = spec.partition(":")
    if name == step and seconds:
        _record("slow", step)  # the test knows the step has begun
        await asyncio.sleep(float(seconds))


class inventory:
    @staticmethod
    def reserve(order_id: str) -> dict[str, str]:
        _record("reserve", order_id)
        return {"reservation": f"r-{order_id}"}


class stripe:
    @staticmethod
    async def charge(user_id: str, amount: float) -> dict[str, object]:
        await _pause("charge")
        _record("charge", user_id, amount)
        return {"id": f"ch-{user_id}-{amount}", "amount": amount}


class orders:
    @staticmethod
    def confirm(order_id: str, charge_id: str) -> bool:
        _record("confirm", order_id, charge_id)
        return True


class email:
    @staticmethod
    def send(user_id: str, text: str) -> bool:
        _record("email", user_id, text)
        return True


payments = Service("payments")


@payments.handler()
async def process_payment(ctx: Context, order: dict[str, Any]) -> dict[str, Any]:
    if order.get("amount", 0) <= 0:
        raise TerminalError("amount must be positive", status_code=400)
    await ctx.run("reserve-inventory", inventory.reserve, order["orderId"])
    charge = await ctx.run("charge-payment", stripe.charge, order["userId"], order["amount"])
    await ctx.run("confirm-order", orders.confirm, order["orderId"], charge["id"])
    await ctx.run("notify", email.send, order["userId"], "Order confirmed!")
    return {"orderId": order["orderId"], "chargeId": charge["id"], "status": "completed"}


app = Endpoint([payments])
