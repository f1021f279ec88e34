"""The physical floor of the broker: what Kafka alone costs, measured in the same run."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def _topic(bootstrap: str, partitions: int = 1) -> tuple[AdminClient, str]:
    topic = f"bench-floor-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    return admin, topic


def latency_ms(bootstrap: str, n: int) -> list[float]:
    """One acks=all (idempotent) produce plus its read-back by a consumer, one at a time."""
    admin, topic = _topic(bootstrap)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 0}
    )
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": topic, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    out = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            producer.produce(topic, b"x" * 64)
            producer.poll(0)
            while consumer.poll(0.5) is None:
                pass
            out.append((time.perf_counter() - start) * 1000)
    finally:
        producer.flush(5)
        consumer.close()
        admin.delete_topics([topic])
    return out


def throughput(bootstrap: str, records: int = 100_000) -> float:
    """Small records per second through produce (acks=all, batched) and consume."""
    admin, topic = _topic(bootstrap, 8)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": topic, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(8)])
    start = time.perf_counter()
    for i in range(records):
        while True:
            try:
                producer.produce(topic, b"x" * 64, partition=i % 8)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)
    seen = 0
    deadline = time.monotonic() + 120
    while seen < records and time.monotonic() < deadline:
        seen += sum(1 for m in consumer.consume(10_000, 0.2) if not m.error())
    elapsed = time.perf_counter() - start
    consumer.close()
    admin.delete_topics([topic])
    return seen / elapsed
