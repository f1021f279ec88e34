"""A subscription through kill -9s of the worker and of the admin process that consumes."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from tests.cluster import Cluster, wait_until
from tests.integration.test_subscriptions import APP, ledger, make_topic, produce, subscribe

pytestmark = [pytest.mark.kafka, pytest.mark.integration, pytest.mark.fault]

RECORDS = 5_000
KEYS = 200


def test_every_record_counts_once_in_order_through_kills_of_worker_and_admin(
    cluster_factory: Callable[..., Cluster], unique_name: Callable[[str], str]
) -> None:
    c = cluster_factory(app=APP)
    worker = c.start_worker("w1")
    c.start_ingress()
    c.wait_leading(worker)
    admin = c.start_admin()
    topic = make_topic(c.bootstrap, unique_name("readings"), partitions=4)
    records = [(f"d{i % KEYS}".encode(), json.dumps({"i": i}).encode()) for i in range(RECORDS)]
    produce(c.bootstrap, topic, records)
    subscribe(c, topic, "service://tally/add", max_in_flight=200)

    def done() -> int:
        return len({line[2] for line in ledger(c, "tally")})

    deadline = time.monotonic() + 240
    kills = [(800, "worker"), (2000, "admin"), (3500, "worker")]
    for at, what in kills:
        wait_until(lambda at=at: done() >= at, 120, f"{at} records before killing the {what}")
        if what == "worker":
            worker.kill9()
            worker = c.start_worker(f"w-after-{at}")
            c.wait_leading(worker)
        else:
            admin.kill9()
            admin = c.start_admin(f"admin-after-{at}")
    wait_until(lambda: done() >= RECORDS, max(deadline - time.monotonic(), 30), "every record")

    def offsets(key: str) -> list[int]:
        r = httpx.post(f"{c.url}/tally/{key}/offsets", timeout=30)
        assert r.status_code == 200, r.text
        return list(r.json())

    per_key = {f"d{k}": offsets(f"d{k}") for k in range(KEYS)}
    assert sum(len(v) for v in per_key.values()) == RECORDS
    for key, got in per_key.items():
        assert len(got) == RECORDS // KEYS, (key, len(got))
        assert got == sorted(got), f"{key}: records of one key ran out of their order"
        assert len(set(got)) == len(got), f"{key}: a record counted twice"
    ids = Counter(line[2] for line in ledger(c, "tally"))
    assert len(ids) == RECORDS, "one invocation per record"
