"""Orders from a Kafka topic start payment workflows, which publish ``payments.completed``.

.venv/bin/perdure dev perdure.examples.orders:app      # worker + ingress + admin (which subscribes)
# an order event, keyed by order id, on the topic "orders" (both topics created if missing):
.venv/bin/python -m perdure.examples.orders o-1 42
curl -s localhost:8080/restate/workflow/payment/o-1/attach   # {"orderId":"o-1",...}
curl -s localhost:9070/subscriptions                          # the subscription and its lag
.venv/bin/python -m perdure.examples.orders --completed       # what payments.completed holds

The handler declares its topic (``subscribe="orders"``); the admin process creates the
subscription when it sees a worker hosting it. The record key is the workflow id: one payment
per order, however often the event is read or sent, and one ``payments.completed`` record per
payment for ``read_committed`` readers, whatever crashes.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from perdure import Endpoint, Subscribe, Workflow, WorkflowContext

payment = Workflow("payment")
COMPLETED = "payments.completed"


def charge(order_id: str, amount: int) -> str:
    print(f"[payments] charged {amount} for {order_id}", flush=True)
    return f"ch-{order_id}-{amount}"


@payment.main(subscribe=Subscribe("orders", options={"max_in_flight": 500}))
async def run(ctx: WorkflowContext, order: dict[str, Any]) -> dict[str, Any]:
    charge_id = await ctx.run("charge", charge, ctx.key(), int(order["amount"]))
    ctx.set("status", "paid")
    paid = {"orderId": ctx.key(), "chargeId": charge_id, "amount": int(order["amount"])}
    await ctx.publish(COMPLETED, paid, key=ctx.key())
    return {**paid, "offset": ctx.headers()["kafka.offset"]}


app = Endpoint([payment])


def _bootstrap() -> str:
    return os.environ.get("PERDURE_BOOTSTRAP", "127.0.0.1:9092")


def _send(order_id: str, amount: int) -> None:
    """Puts one order event on the topic (the user's own service would)."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": _bootstrap()})
    existing = admin.list_topics(timeout=10).topics
    for topic in ("orders", COMPLETED):
        if topic not in existing:
            admin.create_topics([NewTopic(topic, 4, replication_factor=-1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": _bootstrap(), "enable.idempotence": True})
    producer.produce("orders", key=order_id.encode(), value=json.dumps({"amount": amount}))
    producer.flush(15)


def _completed() -> None:
    """Prints every ``payments.completed`` record a read_committed reader sees, one per line."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    reader = Consumer(
        {
            "bootstrap.servers": _bootstrap(),
            "group.id": "examples.orders.reader",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    partitions = reader.list_topics(COMPLETED, timeout=10).topics[COMPLETED].partitions
    reader.assign([TopicPartition(COMPLETED, p, 0) for p in partitions])
    ended: set[int] = set()
    while len(ended) < len(partitions):
        for msg in reader.consume(100, 1.0):
            err = msg.error()
            if err is None:
                print((msg.value() or b"").decode(), flush=True)
            elif err.code() == KafkaError._PARTITION_EOF:
                ended.add(msg.partition() or 0)
    reader.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["--completed"]:
        _completed()
    else:
        _send(sys.argv[1], int(sys.argv[2]))
