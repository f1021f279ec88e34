"""Crashes of one worker or ingress; a store rebuilt from the log (issue 3, tests 2, 3, 6)."""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from rocksdict import Options, Rdict

from perdure.engine import keys
from tests.cluster import Cluster, wait_until
from tests.logfold import fold_partition

pytestmark = [pytest.mark.kafka, pytest.mark.integration, pytest.mark.fault]

ORDER = {"orderId": "o-1", "userId": "u-1", "amount": 9}


def apis(c: Cluster) -> Counter[str]:
    """How often each payment API ran (``slow`` lines only say a slowed step has begun)."""
    return Counter(line[0] for line in c.ledger_lines() if line[0] != "slow")


def test_worker_killed_inside_step_two_resumes_without_redoing_step_one(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = cluster_factory(app="tests.apps.testapp:app", partitions=2)
    worker = c.start_worker("w", env={"PERDURE_EXAMPLE_SLOW": "charge:4"})
    c.start_ingress()
    c.wait_leading(worker)
    result: list[httpx.Response] = []
    caller = threading.Thread(
        target=lambda: result.append(
            httpx.post(f"{c.url}/payments/process_payment", json=ORDER, timeout=90)
        ),
        daemon=True,
    )
    caller.start()
    wait_until(lambda: ["slow", "charge"] in c.ledger_lines(), 30, "step 2 to begin")
    worker.kill9()  # inside step 2: charge waits 4 s before recording
    assert apis(c)["charge"] == 0
    restarted = c.start_worker("w")  # same state dir, no slow step
    c.wait_leading(restarted)
    caller.join(90)
    assert result, "the original call never got an answer"
    assert result[0].status_code == 200, result[0].text
    assert result[0].json() == {"orderId": "o-1", "chargeId": "ch-u-1-9", "status": "completed"}
    counts = apis(c)
    assert counts["reserve"] == 1
    assert 1 <= counts["charge"] <= 2
    assert counts["confirm"] == 1
    assert counts["email"] == 1


def test_ingress_killed_while_a_call_waits(cluster_factory: Callable[..., Cluster]) -> None:
    c = cluster_factory(app="tests.apps.testapp:app", partitions=2)
    worker = c.start_worker("w", env={"PERDURE_EXAMPLE_SLOW": "charge:3"})
    ingress = c.start_ingress()
    c.wait_leading(worker)
    headers = {"idempotency-key": "order-o-1"}
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(f"{c.url}/payments/process_payment", json=ORDER, headers=headers, timeout=60)
        except httpx.HTTPError as err:
            errors.append(err)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    wait_until(lambda: apis(c)["reserve"] == 1, 30, "the invocation to start")
    ingress.kill9()
    caller.join(30)
    assert errors, "the call must have lost its connection"
    wait_until(lambda: apis(c)["email"] == 1, 30, "the invocation to complete without an ingress")
    c.start_ingress("ingress2")
    again = httpx.post(f"{c.url}/payments/process_payment", json=ORDER, headers=headers, timeout=60)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "completed"
    inv = again.headers["x-restate-id"]
    output = httpx.get(f"{c.url}/restate/invocation/{inv}/output", timeout=30)
    assert output.status_code == 200
    assert output.json() == again.json()
    attached = httpx.get(f"{c.url}/restate/invocation/{inv}/attach", timeout=30)
    assert attached.json() == again.json()
    assert apis(c) == Counter({"reserve": 1, "charge": 1, "confirm": 1, "email": 1})


def read_store(path: Path) -> dict[bytes, bytes]:
    db = Rdict(str(path), Options(raw_mode=True))
    try:
        return {bytes(k): bytes(v) for k, v in db.items()}
    finally:
        db.close()


def state_of(store: dict[bytes, bytes]) -> dict[bytes, bytes]:
    return {k: v for k, v in store.items() if k not in (keys.META_APPLIED_OFFSET, keys.META_FORMAT)}


def test_deleted_store_is_rebuilt_from_the_log_to_the_same_state(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = cluster_factory(app="tests.apps.testapp:app", partitions=2)
    worker = c.start_worker("w")
    c.start_ingress()
    c.wait_leading(worker)
    for i in range(12):
        order = {"orderId": f"o{i}", "userId": "u", "amount": i + 1}
        assert httpx.post(f"{c.url}/payments/process_payment", json=order, timeout=30).is_success
        assert httpx.post(f"{c.url}/tests/echo/send", json=i, timeout=30).status_code == 202
    assert httpx.post(f"{c.url}/tests/conflict", json="x", timeout=30).status_code == 409
    assert httpx.post(f"{c.url}/tests/flaky", json="f", timeout=30).status_code == 200
    worker.stop()
    stores = {p: c.state_dir("w") / f"partition-{p}" for p in range(c.partitions)}
    before = {p: read_store(path) for p, path in stores.items()}
    for p, store in before.items():
        offset = keys.decode_int(store[keys.META_APPLIED_OFFSET])
        fold = fold_partition(c.bootstrap, f"{c.name}.log", p, until=offset)
        assert fold.store.data == state_of(store), f"partition {p} is not the fold of its log"

    victim = max(before, key=lambda p: len(before[p]))
    shutil.rmtree(stores[victim])
    again = c.start_worker("w")
    again.wait_for_log(rf"partition {victim} assigned: replaying offsets 0\.\.", 60)
    again.wait_for_log(rf"partition {victim} caught up: \d+ records replayed", 60)
    c.wait_leading(again)
    again.stop()
    rebuilt = read_store(stores[victim])
    offset = keys.decode_int(rebuilt[keys.META_APPLIED_OFFSET])
    assert offset >= keys.decode_int(before[victim][keys.META_APPLIED_OFFSET])
    fold = fold_partition(c.bootstrap, f"{c.name}.log", victim, until=offset)
    assert fold.store.data == state_of(rebuilt)
    # Everything the old store held is there again, byte for byte, but the leader record,
    # which moved on because the restarted worker announced itself with a new epoch.
    old = state_of(before[victim])
    old.pop(keys.META_LEADER)
    assert {k: rebuilt.get(k) for k in old} == old
