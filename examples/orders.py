"""Orders from a Kafka topic start payment workflows: no consumer code, each record once.

.venv/bin/perdure dev examples.orders:app      # worker + ingress + admin (which subscribes)
# an order event, keyed by order id, on the topic "orders" (created here if it does not exist):
.venv/bin/python -m examples.orders o-1 42
curl -s localhost:8080/restate/workflow/payment/o-1/attach   # {"orderId":"o-1",...}
curl -s localhost:9070/subscriptions                          # the subscription and its lag

The handler declares its topic (``subscribe="orders"``); the admin process creates the
subscription when it sees a worker hosting it. The record key is the workflow id: one payment
per order, however often the event is read or sent.
"""

from __future__ import annotations

import json
import os
import sys

from sdk import Endpoint, Subscribe, Workflow, WorkflowContext

payment = Workflow("payment")


def charge(order_id: str, amount: int) -> str:
    print(f"[payments] charged {amount} for {order_id}", flush=True)
    return f"ch-{order_id}-{amount}"


@payment.main(subscribe=Subscribe("orders", options={"max_in_flight": 500}))
async def run(ctx: WorkflowContext, order: dict) -> dict:
    charge_id = await ctx.run("charge", charge, ctx.key(), int(order["amount"]))
    ctx.set("status", "paid")
    return {"orderId": ctx.key(), "chargeId": charge_id, "offset": ctx.headers()["kafka.offset"]}


app = Endpoint([payment])


def _send(order_id: str, amount: int) -> None:
    """Puts one order event on the topic (the user's own service would)."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = os.environ.get("PERDURE_BOOTSTRAP", "127.0.0.1:9092")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if "orders" not in admin.list_topics(timeout=10).topics:
        admin.create_topics([NewTopic("orders", 4, replication_factor=-1)])["orders"].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    producer.produce("orders", key=order_id.encode(), value=json.dumps({"amount": amount}))
    producer.flush(15)


if __name__ == "__main__":
    _send(sys.argv[1], int(sys.argv[2]))
