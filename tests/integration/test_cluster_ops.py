"""A cluster that changes under load: replicated topics, placement, graceful hand-over, rolls.

The roll and replication tests run on three real brokers (``deploy/kafka/cluster.sh``); the
placement tests on the single test broker (the group's assignment does not depend on it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from tests.cluster import REPO, Cluster, Proc, free_port, led_by, wait_until
from tests.kafka_cluster import KafkaCluster
from tests.steady_load import SteadyLoad

pytestmark = [pytest.mark.kafka, pytest.mark.integration]

_NO_SESSION_TIMEOUT = {"PERDURE_SESSION_TIMEOUT_MS": "45000"}
"""A session timeout longer than any wait below: a partition moves only when its worker
hands it over (or joins), never because a worker went silent."""


def placement(c: Cluster) -> dict:
    r = httpx.get(f"{c.admin_url}/cluster", timeout=15)
    assert r.status_code == 200, r.text
    return r.json()


def counts(doc: dict) -> list[int]:
    return sorted(len(w["partitions"]) for w in doc["workers"])


def wait_placement(c: Cluster, cond: Callable[[dict], bool], timeout: float, what: str) -> dict:
    seen: list[dict] = []

    def ok() -> bool:
        seen[:] = [placement(c)]
        return cond(seen[0])

    try:
        wait_until(ok, timeout, what, every=0.5)
    except AssertionError as err:
        raise AssertionError(f"{err}; last placement: {json.dumps(seen[-1:])}") from None
    return seen[0]


@pytest.mark.fault
def test_four_workers_share_sixteen_partitions_and_a_stopped_one_hands_over_at_once(
    cluster_factory: Callable[..., Cluster],
) -> None:
    """Scaling in; scaling out is the rolling restart's (each restarted worker joins and is
    given its share)."""
    c = cluster_factory(app="tests.apps.chaos:app", partitions=16, env=_NO_SESSION_TIMEOUT)
    workers = [c.start_worker(f"w{n}") for n in range(1, 5)]
    c.start_admin()
    doc = wait_placement(
        c,
        lambda d: len(d["workers"]) == 4 and not d["unassigned"] and d["balanced"],
        120,
        "four workers, all 16 partitions placed, balanced",
    )
    assert all(3 <= n <= 5 for n in counts(doc)), doc
    assert doc["partitions"] == 16 and doc["assignor"] == "cooperative-sticky"
    # What an operator types: the same placement as a table.
    out = subprocess.run(
        [sys.executable, "-m", "perdure", "cluster", "--admin-url", c.admin_url],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "16 partitions, 4 workers" in out and "balanced" in out, out
    for w in doc["workers"]:
        assert w["worker"] in out
    for proc in workers:
        c.wait_leading(proc, 1, timeout=60)

    # SIGTERM: the worker drains and leaves the group; the others take its partitions over
    # long before the 45 s session timeout would have noticed it gone.
    gone = workers[0]
    stopped_at = time.monotonic()
    gone.stop()
    assert gone.popen.returncode == 0, gone.log()[-2000:]
    assert "handing the partitions over" in gone.log()
    doc = wait_placement(
        c,
        lambda d: len(d["workers"]) == 3 and not d["unassigned"],
        15,
        "three workers with every partition, soon after a graceful stop",
    )
    assert counts(doc) in ([5, 5, 6], [4, 6, 6], [4, 5, 7]) and sum(counts(doc)) == 16, doc

    def all_led() -> bool:
        return sum(len(led_by(w)) for w in workers[1:]) == 16

    wait_until(all_led, 30, "the three to lead all 16 partitions")
    assert time.monotonic() - stopped_at < 30

    assert all(len(led_by(w)) >= 4 for w in workers[1:])


def test_a_single_broker_log_is_flagged_as_losing_steps_with_its_broker(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = cluster_factory(app="tests.apps.chaos:app")
    worker = c.start_worker()
    c.wait_leading(worker)
    assert re.search(r"WARNING .*\.log: replication factor 1, min.insync.replicas 1", worker.log())


@pytest.mark.cluster
def test_on_three_brokers_topics_keep_three_replicas_two_in_sync_and_no_warning(
    kafka_cluster: KafkaCluster, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    c = Cluster(kafka_cluster.bootstrap, unique_name("rf"), tmp_path, app="tests.apps.chaos:app")
    try:
        worker = c.start_worker()
        c.wait_leading(worker, timeout=120)
        admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap})
        for topic in (f"{c.name}.log", f"{c.name}.backups", f"{c.name}.responses"):
            md = admin.list_topics(topic, timeout=10).topics[topic]
            assert {len(p.replicas) for p in md.partitions.values()} == {3}, topic
            res = ConfigResource(ResourceType.TOPIC, topic)
            configs = admin.describe_configs([res])[res].result(10)
            assert configs["min.insync.replicas"].value == "2", topic
            assert configs["unclean.leader.election.enable"].value == "false", topic
        assert "replication factor" not in worker.log()
    finally:
        c.stop_all()


@pytest.mark.fault
def test_a_rolling_restart_of_every_worker_and_ingress_fails_no_call(
    cluster_factory: Callable[..., Cluster],
) -> None:
    """Every worker, then every ingress, stopped with SIGTERM and started again under steady
    load through both replicas (tests/steady_load.py balances them by readiness)."""
    rate = float(os.environ.get("PERDURE_ROLL_RATE", "40"))
    c = cluster_factory(
        app="tests.apps.chaos:app",
        partitions=12,
        env={**_NO_SESSION_TIMEOUT, "PERDURE_SHUTDOWN_DELAY_S": "3"},
    )
    workers = {f"w{n}": c.start_worker(f"w{n}") for n in (1, 2, 3)}
    ports = {f"ingress-{n}": free_port() for n in (1, 2)}
    ingresses: dict[str, Proc] = {n: c.start_ingress(n, p) for n, p in ports.items()}
    for proc in workers.values():
        c.wait_leading(proc, 1, timeout=120)
    urls = [f"http://127.0.0.1:{p}" for p in ports.values()]
    body = json.dumps({"id": "roll", "n": 3}).encode()
    load_began = time.time()
    load = SteadyLoad(urls, "/chaos/steps", body, rate, check_s=0.25).start()
    time.sleep(2)
    roll_began = time.time()
    for name in sorted(workers):
        workers[name].stop(timeout=40)
        assert workers[name].popen.returncode == 0, workers[name].log()[-2000:]
        assert "handing the partitions over" in workers[name].log()
        workers[name] = c.start_worker(name)
        c.wait_leading(workers[name], 1, timeout=60)
        time.sleep(0.5)
    for name in sorted(ingresses):
        ingresses[name].stop(timeout=40)
        # uvicorn ends by raising the signal it shut down on again: -SIGTERM is a clean stop.
        assert ingresses[name].popen.returncode in (0, -15), ingresses[name].log()[-2000:]
        ingresses[name] = c.start_ingress(name, ports[name])
        time.sleep(0.5)
    roll_ended = time.time()
    time.sleep(2)
    sent_for = time.time() - load_began
    report = load.stop()
    p50 = report.p(0.5, roll_began, roll_ended)
    p99 = report.p(0.99, roll_began, roll_ended)
    print(
        f"rolling restart at {rate:.0f} calls/s offered, {report.sent / sent_for:.0f} sent"
        f" (the client shares the cores): {report.sent} sent, {report.answered}"
        f" answered, {len(report.errors)} errors, {report.rerouted} refused connections sent"
        f" on; p50 {p50:.3f} s, p99 {p99:.3f} s during the roll ({roll_ended - roll_began:.0f} s)"
    )
    assert report.errors == [], report.errors[:10]
    assert report.answered == report.sent
    # Every hand-over was graceful: nobody waited for the 45 s session timeout.
    assert p99 < 15, p99


def test_a_stopping_ingress_says_not_ready_serves_for_its_delay_then_exits(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = cluster_factory(app="tests.apps.chaos:app", env={"PERDURE_SHUTDOWN_DELAY_S": "3"})
    worker = c.start_worker()
    ingress = c.start_ingress()
    c.wait_leading(worker)
    assert httpx.post(f"{c.url}/tally/a/add", content=b"1", timeout=30).json() == 1
    ingress.signal(15)
    began = time.monotonic()
    wait_until(lambda: httpx.get(f"{c.url}/health", timeout=2).status_code == 503, 2, "503")
    assert "shutting down" in httpx.get(f"{c.url}/health", timeout=2).text
    # Still serving what comes in meanwhile (a balancer takes it out on the 503).
    assert httpx.post(f"{c.url}/tally/a/add", content=b"1", timeout=30).json() == 2
    ingress.popen.wait(20)
    assert 2.5 < time.monotonic() - began < 15
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{c.url}/health", timeout=2)
