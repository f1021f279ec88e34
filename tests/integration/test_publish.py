"""ctx.publish: a handler's records reach a topic exactly once for read_committed readers.

Real broker, real ``perdure worker``/``ingress`` processes; the topic is read from outside.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from tests.cluster import Cluster, serving, wait_until
from tests.integration.test_subscriptions import make_topic

pytestmark = [pytest.mark.kafka, pytest.mark.integration]

APP = "tests.apps.publishing:app"


def read_topic(bootstrap: str, topic: str, isolation: str = "read_committed") -> list[Message]:
    """Every record of ``topic`` a reader with ``isolation`` sees, up to the end of each
    partition (commit markers take offsets: the end is found by EOF, not by the watermark)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
        }
    )
    try:
        partitions = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, 0) for p in partitions])
        at_end: set[int] = set()
        out: list[Message] = []
        deadline = time.monotonic() + 30
        while len(at_end) < len(partitions):
            assert time.monotonic() < deadline, f"{topic}: no end reached in 30 s"
            for msg in c.consume(500, 0.5):
                err = msg.error()
                if err is None:
                    out.append(msg)
                    at_end.discard(msg.partition() or 0)
                elif err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition() or 0)
        return out
    finally:
        c.close()


def call(c: Cluster, path: str, body: Any = None, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{c.url}/{path}", json=body, timeout=timeout)


def test_published_records_carry_value_key_headers_and_appear_once(
    cluster_factory: Callable[..., Cluster], unique_name: Callable[[str], str]
) -> None:
    c = serving(cluster_factory, app=APP)
    topic = make_topic(c.bootstrap, unique_name("out"), partitions=2)

    r = call(c, "emitter/emit", {"topic": topic, "id": 7, "count": 3})
    assert r.status_code == 200, r.text
    assert r.json() == 3
    # The same invocation again (idempotency key) publishes nothing more.
    headers = {"idempotency-key": "once"}
    for _ in range(2):
        r = httpx.post(
            f"{c.url}/emitter/emit",
            json={"topic": topic, "id": 8, "count": 2},
            headers=headers,
            timeout=60,
        )
        assert r.status_code == 200, r.text

    got = read_topic(c.bootstrap, topic)
    values = sorted((m.key(), json.loads(m.value() or b"")["i"]) for m in got)
    assert values == [(b"7", 0), (b"7", 1), (b"7", 2), (b"8", 0), (b"8", 1)]
    assert all(json.loads(m.value() or b"")["id"] == int(m.key() or b"") for m in got)
    for m in got:
        h = dict(m.headers() or [])
        assert h["source"] == b"emitter"
        assert h["perdure.publish.id"].decode().count(":") >= 1
    ids = Counter(dict(m.headers() or [])["perdure.publish.id"] for m in got)
    assert max(ids.values()) == 1

    # Raw bytes stay bytes; a non-UTF-8 key is a key like any other.
    r = call(c, "emitter/emit_raw", {"topic": topic})
    assert r.status_code == 200, r.text
    raw = [m for m in read_topic(c.bootstrap, topic) if m.key() == b"\xffkey"]
    assert [m.value() for m in raw] == [b"\x00raw"]


def test_bad_topics_fail_with_a_clear_error_and_publish_nothing(
    cluster_factory: Callable[..., Cluster], unique_name: Callable[[str], str]
) -> None:
    c = serving(cluster_factory, app=APP)

    r = call(c, "emitter/bad_topic")
    assert r.status_code == 400, r.text
    assert "not a Kafka topic name" in r.text

    # A topic that does not exist (the broker creates none): the attempts fail and say why.
    missing = unique_name("missing")
    r = call(c, "emitter/emit_raw", {"topic": missing})
    assert r.status_code == 500, r.text
    assert missing in r.text
    worker = c.procs[0]
    assert "cannot publish to topic" in worker.log()

    # The partition goes on publishing for others.
    topic = make_topic(c.bootstrap, unique_name("out"), partitions=1)
    r = call(c, "emitter/emit", {"topic": topic, "id": 1, "count": 1})
    assert r.status_code == 200, r.text
    assert len(read_topic(c.bootstrap, topic)) == 1


def test_a_worker_restarted_on_its_partitions_publishes_for_them(
    cluster_factory: Callable[..., Cluster], unique_name: Callable[[str], str]
) -> None:
    """The new owner's producer fences the old one's transactional id (a graceful stop and a
    start on the same ids): publishing goes on, nothing is doubled."""
    c = cluster_factory(app=APP)
    worker = c.start_worker("w1")
    c.start_ingress()
    c.wait_leading(worker)
    topic = make_topic(c.bootstrap, unique_name("out"), partitions=1)
    assert call(c, "emitter/emit", {"topic": topic, "id": 1, "count": 2}).status_code == 200
    worker.stop()
    worker = c.start_worker("w2")
    c.wait_leading(worker)
    assert call(c, "emitter/emit", {"topic": topic, "id": 2, "count": 2}).status_code == 200
    wait_until(lambda: len(read_topic(c.bootstrap, topic)) == 4, 30, "4 records")


def mirror_env(bootstrap: str) -> dict[str, str]:
    """A second Kafka cluster by name: the same broker, reached as another cluster would be
    (its own clients, transactions and positions)."""
    return {"PERDURE_KAFKA_CLUSTERS": json.dumps({"mirror": {"bootstrap.servers": bootstrap}})}


def test_a_record_for_another_cluster_is_forwarded_once_without_its_routing_headers(
    cluster_factory: Callable[..., Cluster],
    unique_name: Callable[[str], str],
    kafka_bootstrap: str,
) -> None:
    c = serving(cluster_factory, app=APP, env=mirror_env(kafka_bootstrap))
    c.start_admin()
    topic = make_topic(c.bootstrap, unique_name("mirrored"), partitions=2)

    r = call(c, "emitter/emit", {"topic": topic, "id": 3, "count": 3, "cluster": "mirror"})
    assert r.status_code == 200, r.text
    wait_until(lambda: len(read_topic(c.bootstrap, topic)) >= 3, 60, "3 forwarded records")
    time.sleep(1)
    got = read_topic(c.bootstrap, topic)
    assert sorted(json.loads(m.value() or b"")["i"] for m in got) == [0, 1, 2]
    for m in got:
        names = [name for name, _ in m.headers() or []]
        assert names == ["source", "perdure.publish.id"], names
        assert m.key() == b"3"

    r = call(c, "emitter/emit", {"topic": topic, "id": 4, "count": 1, "cluster": "nowhere"})
    assert r.status_code == 400, r.text
    assert "unknown Kafka cluster 'nowhere'" in r.text
    r = call(c, "emitter/emit_raw", {"topic": unique_name("none"), "cluster": "mirror"})
    assert r.status_code == 500 and "cannot publish to topic" in r.text, r.text
