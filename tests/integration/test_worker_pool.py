"""``perdure worker --processes N``: one command whose member processes share the partitions,
with one log and one metrics endpoint, that dies whole under kill -9 and restarts a member that
died alone; no invocation is lost or completed twice through either."""

from __future__ import annotations

import os
import re
import signal
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.cluster import Cluster, Proc, free_port, wait_until
from tests.logfold import fold_partition

pytestmark = [pytest.mark.kafka, pytest.mark.integration, pytest.mark.fault]

PARTITIONS = 4


def members(pool: Proc) -> dict[int, int]:
    """Member index -> its newest PID, from the pool's log."""
    found: dict[int, int] = {}
    for m in re.finditer(r"member (\d+) started \(pid (\d+)\)", pool.log()):
        found[int(m.group(1))] = int(m.group(2))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def pay(c: Cluster, orders: list[str]) -> dict[str, httpx.Response]:
    def call(order_id: str) -> httpx.Response:
        order = {"orderId": order_id, "userId": order_id, "amount": 5}
        return httpx.post(f"{c.url}/payments/process_payment", json=order, timeout=120)

    with ThreadPoolExecutor(16) as pool:
        return dict(zip(orders, pool.map(call, orders), strict=True))


def exactly_once(c: Cluster, orders: list[str], results: dict[str, httpx.Response]) -> None:
    assert all(r.status_code == 200 for r in results.values()), [
        r.text for r in results.values() if r.status_code != 200
    ][:3]
    assert {o: r.json()["chargeId"] for o, r in results.items()} == {o: f"ch-{o}-5" for o in orders}
    ended = Counter[str]()
    for p in range(PARTITIONS):
        fold = fold_partition(c.bootstrap, f"{c.name}.log", p)
        ended.update(fold.ended)
        assert fold.unfenced == [], "only the leader of its time may have its records accepted"
    assert sorted(ended.values()) == [1] * len(orders), "every invocation ends exactly once"


def start_pool(
    cluster_factory: Callable[..., Cluster], metrics_port: int = 0
) -> tuple[Cluster, Proc]:
    c = cluster_factory(app="tests.apps.testapp:app", partitions=PARTITIONS)
    env = {"PERDURE_WORKER_PROCESSES": "2"}
    if metrics_port:
        env["PERDURE_METRICS_PORT"] = str(metrics_port)
    pool = c.start_worker("pool", env=env)
    c.start_ingress()
    c.wait_leading(pool, timeout=90)
    wait_until(lambda: len(members(pool)) == 2, 10, "two members")
    return c, pool


def test_a_pool_shares_the_partitions_and_serves_one_metrics_endpoint(
    cluster_factory: Callable[..., Cluster],
) -> None:
    port = free_port()
    c, pool = start_pool(cluster_factory, port)
    # Each member leads its share: leader ids of both members appear in the one log.
    wait_until(
        lambda: {m for m in re.findall(r"-m(\d)-[0-9a-f]{8}", pool.log())} >= {"0", "1"},
        60,
        "both members to claim partitions",
    )
    orders = [f"p{i}" for i in range(40)]
    exactly_once(c, orders, pay(c, orders))

    def scraped() -> str:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text

    wait_until(lambda: 'member="0"' in scraped() and 'member="1"' in scraped(), 30, "both members")
    owned = re.findall(r'^perdure_partitions_owned\{member="(\d)"\} (\S+)$', scraped(), re.M)
    assert sum(float(v) for _, v in owned) == PARTITIONS, owned
    ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10)
    assert ready.status_code == 200, ready.text

    # SIGTERM to the pool: every member drains and leaves, and the pool exits 0.
    pool.signal(signal.SIGTERM)
    assert pool.popen.wait(60) == 0
    assert not any(alive(pid) for pid in members(pool).values())


def test_kill9_of_the_pool_kills_its_members_and_a_member_killed_alone_is_restarted(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c, pool = start_pool(cluster_factory)
    first = members(pool)

    # A member killed alone: the pool starts it again, and it serves.
    results: dict[str, httpx.Response] = {}
    orders = [f"k{i}" for i in range(120)]
    loader = threading.Thread(target=lambda: results.update(pay(c, orders)), daemon=True)
    loader.start()
    wait_until(lambda: len(c.ledger_lines()) >= 4 * 20, 60, "20 payments under way")
    os.kill(first[1], signal.SIGKILL)
    wait_until(lambda: members(pool)[1] != first[1], 30, "member 1 to be started again")
    loader.join(180)
    assert not loader.is_alive(), "the load did not finish"
    exactly_once(c, orders, results)

    # kill -9 of the pool: no member goes on leading as an orphan.
    now = members(pool)
    pool.kill9()
    wait_until(lambda: not any(alive(pid) for pid in now.values()), 10, "members to die")
    # A worker that takes over finds every invocation ended once, and serves.
    single = c.start_worker("single")
    c.wait_leading(single, timeout=90)
    more = [f"s{i}" for i in range(10)]
    exactly_once(c, orders + more, {**results, **pay(c, more)})
