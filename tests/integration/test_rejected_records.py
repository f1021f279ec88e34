"""On Kafka, a record whose apply raises is rejected and its partition goes on; one that cannot
be read blocks its partition, and the worker's readiness and the admin's ``GET /cluster`` name
it (issue 31).

The records are written straight to the log, as a forged client or an older edge could: the
edges would refuse them (tests/ingress/test_edges.py). On the main this issue started from, the
first blocked its partition for good ("applied until a worker that can read it owns the
partition") and every key on it stopped answering; the worker had no readiness to say so.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from confluent_kafka import Producer

from perdure.engine import codec, schemas
from perdure.engine.ids import InvocationId, partition_for_key
from perdure.engine.model import HandlerKind, Target
from perdure.engine.records import Envelope, Invoke
from tests.cluster import Cluster, free_port, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.integration, pytest.mark.fault]

PARTITIONS = 2


def _produce(c: Cluster, partition: int, value: bytes, version: bytes) -> None:
    producer = Producer({"bootstrap.servers": c.bootstrap, "enable.idempotence": True})
    producer.produce(
        f"{c.name}.log",
        value=value,
        partition=partition,
        headers=[(schemas.VERSION_HEADER, version)],
    )
    assert producer.flush(30) == 0


def _key_on(partition: int) -> str:
    return next(
        k
        for k in (f"k{i}" for i in range(100))
        if partition_for_key(k.encode(), PARTITIONS) == partition
    )


def _rejected(metrics_port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    found = re.search(r"^perdure_records_rejected_total (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_record_that_cannot_be_applied_is_rejected_and_one_that_cannot_be_read_blocks(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = cluster_factory(app="tests.apps.testapp:app", partitions=PARTITIONS)
    metrics_port = free_port()
    w = c.start_worker("w", env={"PERDURE_METRICS_PORT": str(metrics_port)})
    c.start_ingress()
    c.start_admin(port=free_port())
    c.wait_leading(w, PARTITIONS)
    ready = f"http://127.0.0.1:{metrics_port}/health/ready"
    assert httpx.get(ready, timeout=5).status_code == 200

    # A 70,000-byte object key, past what a store key holds, on partition 0.
    key = "x" * 70_000
    forged = Invoke(
        str(InvocationId.for_key(key.encode(), b"\x01" * 16)),
        Target("counter", "add", key),
        b"1",
        handler_kind=HandlerKind.EXCLUSIVE,
    )
    version = str(schemas.SCHEMA_VERSION).encode()
    _produce(c, 0, codec.encode_envelope(Envelope(forged)), version)
    wait_until(lambda: _rejected(metrics_port) >= 1, 30, "the record to be rejected")
    on_0 = _key_on(0)
    assert httpx.post(f"{c.url}/counter/{on_0}/add", json=2, timeout=30).json() == 2
    assert "record rejected, the partition goes on" in w.log()
    assert httpx.get(ready, timeout=5).status_code == 200, "a rejection blocks nothing"

    # A record of a version this worker does not know, on partition 1: it blocks, loudly.
    _produce(c, 1, b"\x00future", b"99")
    wait_until(lambda: httpx.get(ready, timeout=5).status_code == 503, 30, "readiness to fail")
    body = httpx.get(ready, timeout=5).json()
    assert body["code"] == 503 and "partition 1 blocked at offset" in body["message"], body
    assert httpx.get(f"http://127.0.0.1:{metrics_port}/health/live", timeout=5).status_code == 200
    # The admin API (and its UI, and ``perdure cluster``) says which, and why, from Kafka.

    def blocked() -> list[dict[str, object]]:
        doc = httpx.get(f"{c.admin_url}/cluster", timeout=10).json()
        return list(doc["blocked"])

    wait_until(lambda: bool(blocked()), 30, "the admin to see the blocked partition")
    (shown,) = blocked()
    assert shown["partition"] == 1 and "not known" in str(shown["why"]), shown
    # Partition 0 still answers.
    assert httpx.post(f"{c.url}/counter/{on_0}/add", json=1, timeout=30).json() == 3
