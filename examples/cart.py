"""A shopping cart: a virtual object per cart id that checks out through the payments service.

perdure dev examples.cart:app
curl -s localhost:8080/cart/alice/add_item -d '{"sku": "book", "price": 12}'
curl -s localhost:8080/cart/alice/get_items -X POST
curl -s localhost:8080/cart/alice/checkout -X POST
"""

from __future__ import annotations

from examples.payments import payments, process_payment
from sdk import Endpoint, ObjectContext, ObjectSharedContext, TerminalError, VirtualObject

cart = VirtualObject("cart")


@cart.handler()
async def add_item(ctx: ObjectContext, item: dict) -> dict:
    items = await ctx.get("items") or []
    items.append(item)
    ctx.set("items", items)
    return {"items": len(items)}


@cart.handler()
async def checkout(ctx: ObjectContext) -> dict:
    items = await ctx.get("items") or []
    if not items:
        raise TerminalError("Cart is empty", status_code=400)
    total = sum(int(item.get("price", 1)) for item in items)
    order = {"orderId": ctx.key(), "userId": ctx.key(), "amount": total, "items": items}
    result: dict = await ctx.service_call(process_payment, order)
    ctx.clear("items")
    return result


@cart.handler(kind="shared")
async def get_items(ctx: ObjectSharedContext) -> list:
    return await ctx.get("items") or []


app = Endpoint([cart, payments])
