"""A checkout with named steps, a flaky payment gateway and a wait: what an operator looks at.

The web UI's browser test (tests/ingress/test_web_ui.py) and the README's screenshots use it.
"""

from __future__ import annotations

from datetime import timedelta

from perdure import Context, Endpoint, RetryPolicy, Service
from tests.apps import testapp
from tests.apps.testapp import count, record

orders = Service("orders")


@orders.handler(retry=RetryPolicy(initial_interval=timedelta(milliseconds=200)))
async def checkout(ctx: Context, order_id: str) -> dict:
    """Reserves stock, charges (the gateway times out twice), waits for the packer, ships."""
    reserved = await ctx.run("reserve stock", lambda: {"sku": "tea-42", "qty": 2})
    record("charge-attempt", order_id)
    if count("charge-attempt", order_id) <= 2:
        raise RuntimeError(f"payment gateway timed out (order {order_id})")
    charge = await ctx.run("charge card", lambda: {"charge": f"ch_{order_id}", "amount": 1800})
    await ctx.sleep(timedelta(milliseconds=400))
    shipment = await ctx.run("ship", lambda: f"parcel-{order_id}")
    return {"reserved": reserved, "charge": charge, "shipment": shipment}


@orders.handler()
async def await_approval(ctx: Context, order_id: str) -> str:
    """Waits an hour for a manager: the one an operator cancels."""
    await ctx.run("ask manager", lambda: f"asked about {order_id}")
    await ctx.sleep(timedelta(hours=1))
    return "approved"


app = Endpoint([orders, *testapp.app.services.values()])
