"""A shopping cart: a virtual object per cart id that checks out through the payments service.

perdure dev perdure.examples.cart:app
curl -s localhost:8080/cart/alice/add_item -d '{"sku": "book", "price": 12}'
curl -s localhost:8080/cart/alice/get_items -X POST
curl -s localhost:8080/cart/alice/checkout -X POST
"""

from __future__ import annotations

from typing import Any

from perdure import Endpoint, ObjectContext, ObjectSharedContext, TerminalError, VirtualObject
from perdure.examples.payments import payments, process_payment

cart = VirtualObject("cart")


@cart.handler()
async def add_item(ctx: ObjectContext, item: dict[str, Any]) -> dict[str, Any]:
    items = await ctx.get("items") or []
    items.append(item)
    ctx.set("items", items)
    return {"items": len(items)}


@cart.handler()
async def checkout(ctx: ObjectContext) -> dict[str, Any]:
    items = await ctx.get("items") or []
    if not items:
        raise TerminalError("Cart is empty", status_code=400)
    total = sum(int(item.get("price", 1)) for item in items)
    order = {"orderId": ctx.key(), "userId": ctx.key(), "amount": total, "items": items}
    result: dict[str, Any] = await ctx.service_call(process_payment, order)
    ctx.clear("items")
    return result


@cart.handler(kind="shared")
async def get_items(ctx: ObjectSharedContext) -> list[dict[str, Any]]:
    return await ctx.get("items") or []


app = Endpoint([cart, payments])
