"""The Kafka features Perdure relies on, proven on the real broker from deploy/kafka.

Each test asserts what its name claims; none of them would pass on a broker (or an emulator) that
got the feature wrong.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.kafka


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)


def read_all(
    bootstrap: str,
    topic: str,
    partitions: int,
    expect: int,
    *,
    isolation: str = "read_committed",
    timeout: float = 20.0,
) -> list[Message]:
    """Reads a topic from the start with assign() (no group), until `expect` records or timeout."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(msg.error())
                out.append(msg)
        # Give anything extra (duplicates, aborted records) a chance to show up.
        extra_until = time.monotonic() + 0.5
        while time.monotonic() < extra_until:
            out.extend(m for m in consumer.consume(500, 0.1) if not m.error())
    finally:
        consumer.close()
    return out


def test_create_topic_with_eight_partitions(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("topic")
    create_topic(kafka_bootstrap, topic, 8)
    md = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(topic, timeout=10)
    assert md.topics[topic].error is None
    assert sorted(md.topics[topic].partitions) == list(range(8))
    with pytest.raises(KafkaException) as err:
        create_topic(kafka_bootstrap, topic, 8)
    assert err.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS


def test_auto_topic_creation_is_off(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("missing")
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.timeout.ms": 3000})
    errors: list[KafkaError] = []
    producer.produce(topic, b"x", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(10)
    assert errors and errors[0] is not None
    md = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
    assert topic not in md.topics


def test_keyed_records_keep_per_key_order(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("topic")
    create_topic(kafka_bootstrap, topic, 8)
    # Idempotent, like every Perdure producer: without it a retried batch (a broker busy at
    # start, say) may land after the next one, and the order holds only by luck.
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "enable.idempotence": True,
        }
    )
    keys = [f"key-{i}" for i in range(40)]
    for seq in range(50):
        for key in keys:
            producer.produce(topic, key=key.encode(), value=str(seq).encode())
    assert producer.flush(30) == 0

    records = read_all(kafka_bootstrap, topic, 8, expect=2000)
    assert len(records) == 2000
    partitions_of_key: dict[bytes, set[int]] = defaultdict(set)
    seqs_of_key: dict[bytes, list[int]] = defaultdict(list)
    for msg in sorted(records, key=lambda m: (m.partition(), m.offset())):
        key = msg.key()
        assert key is not None
        partitions_of_key[key].add(msg.partition())
        seqs_of_key[key].append(int(msg.value() or b"-1"))
    assert all(len(p) == 1 for p in partitions_of_key.values()), "a key spans partitions"
    assert all(s == list(range(50)) for s in seqs_of_key.values()), "a key lost its order"
    assert len({p for ps in partitions_of_key.values() for p in ps}) > 1


class GroupMember:
    """A consumer-group member polled on its own thread, recording its assignment callbacks."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.assigned: set[int] = set()
        self.events: list[tuple[str, list[int]]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
                "partition.assignment.strategy": "cooperative-sticky",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe(
            [topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _on_assign(self, _c: Consumer, parts: list[TopicPartition]) -> None:
        with self.lock:
            self.assigned |= {p.partition for p in parts}
            self.events.append(("assign", sorted(p.partition for p in parts)))

    def _on_revoke(self, _c: Consumer, parts: list[TopicPartition]) -> None:
        with self.lock:
            self.assigned -= {p.partition for p in parts}
            self.events.append(("revoke", sorted(p.partition for p in parts)))

    def _on_lost(self, _c: Consumer, parts: list[TopicPartition]) -> None:
        with self.lock:
            self.assigned -= {p.partition for p in parts}
            self.events.append(("lost", sorted(p.partition for p in parts)))

    def _run(self) -> None:
        while not self.stop.is_set():
            self.consumer.poll(0.1)
        self.consumer.close()

    def snapshot(self) -> set[int]:
        with self.lock:
            return set(self.assigned)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def test_group_members_split_partitions_and_rebalance_callbacks_fire(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic, group = unique_name("topic"), unique_name("group")
    create_topic(kafka_bootstrap, topic, 8)
    a = GroupMember(kafka_bootstrap, group, topic)
    b: GroupMember | None = None
    try:
        wait_until(lambda: a.snapshot() == set(range(8)), 30, "the first member to own all 8")
        b = GroupMember(kafka_bootstrap, group, topic)
        member_b = b
        wait_until(
            lambda: (
                a.snapshot() | member_b.snapshot() == set(range(8))
                and not a.snapshot() & member_b.snapshot()
                and bool(member_b.snapshot())
                and bool(a.snapshot())
            ),
            30,
            "two members to split the partitions",
        )
        assert any(kind == "revoke" for kind, _ in a.events), a.events
        assert any(kind == "assign" and parts for kind, parts in b.events), b.events
        b.close()
        wait_until(lambda: a.snapshot() == set(range(8)), 30, "the survivor to take all back")
    finally:
        a.close()
        if b is not None:
            b.close()


def test_idempotent_producer_writes_each_record_once_in_order(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("topic")
    create_topic(kafka_bootstrap, topic, 1)
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "enable.idempotence": True,
            "max.in.flight.requests.per.connection": 5,
            "linger.ms": 1,
        }
    )
    failures: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(err)

    for i in range(2000):
        producer.produce(topic, value=str(i).encode(), on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert failures == []
    records = read_all(kafka_bootstrap, topic, 1, expect=2000)
    assert [int(m.value() or b"-1") for m in records] == list(range(2000))
    # An idempotent producer must have acks=all; librdkafka refuses the contradiction outright.
    with pytest.raises(KafkaException):
        Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "acks": 1})


def test_transaction_commits_consumed_offsets_with_its_output(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    src, dst, group = unique_name("in"), unique_name("out"), unique_name("group")
    create_topic(kafka_bootstrap, src, 2)
    create_topic(kafka_bootstrap, dst, 1)
    feeder = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(300):
        feeder.produce(src, key=str(i % 7).encode(), value=str(i).encode())
    assert feeder.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": unique_name("tx")}
    )
    producer.init_transactions(30)
    consumer.subscribe([src])
    copied = 0
    deadline = time.monotonic() + 60
    try:
        while copied < 300 and time.monotonic() < deadline:
            batch = [m for m in consumer.consume(100, 1.0) if not m.error()]
            if not batch:
                continue
            producer.begin_transaction()
            for msg in batch:
                producer.produce(dst, value=msg.value())
            producer.send_offsets_to_transaction(
                consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
            )
            producer.commit_transaction(30)
            copied += len(batch)
        assert copied == 300
        committed = consumer.committed([TopicPartition(src, 0), TopicPartition(src, 1)], 10)
        ends = [consumer.get_watermark_offsets(tp, 10)[1] for tp in committed]
        assert [tp.offset for tp in committed] == ends
    finally:
        consumer.close()
    assert len(read_all(kafka_bootstrap, dst, 1, expect=300)) == 300


def test_aborted_transaction_is_invisible_to_read_committed(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("topic")
    create_topic(kafka_bootstrap, topic, 1)
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": unique_name("tx")}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(10):
        producer.produce(topic, value=f"aborted-{i}".encode())
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    for i in range(5):
        producer.produce(topic, value=f"committed-{i}".encode())
    producer.commit_transaction(30)

    committed = read_all(kafka_bootstrap, topic, 1, expect=5, isolation="read_committed")
    assert [m.value() for m in committed] == [f"committed-{i}".encode() for i in range(5)]
    uncommitted = read_all(kafka_bootstrap, topic, 1, expect=15, isolation="read_uncommitted")
    assert len(uncommitted) == 15


def test_second_producer_with_same_transactional_id_fences_the_first(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic, txid = unique_name("topic"), unique_name("tx")
    create_topic(kafka_bootstrap, topic, 1)
    zombie = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": txid})
    zombie.init_transactions(30)
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie-1")
    zombie.flush(30)

    fresh = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": txid})
    fresh.init_transactions(30)  # bumps the epoch and aborts the zombie's open transaction
    fresh.begin_transaction()
    fresh.produce(topic, value=b"good-1")
    fresh.commit_transaction(30)

    zombie.produce(topic, value=b"zombie-2")
    with pytest.raises(KafkaException) as err:
        zombie.commit_transaction(30)
    assert err.value.args[0].fatal() or err.value.args[0].code() in (
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
    )
    visible = read_all(kafka_bootstrap, topic, 1, expect=1)
    assert [m.value() for m in visible] == [b"good-1"]
