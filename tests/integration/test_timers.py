"""Durable timers, delayed sends and deterministic helpers through crashes (issue 5, 1, 2, 6)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.cluster import Cluster, free_port, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.integration, pytest.mark.fault]

APP = "tests.apps.testapp:app"


def metric(port: int, name: str) -> float:
    """A sample of a worker's /metrics (0 while it does not answer yet)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def started(cluster_factory: Callable[..., Cluster], **env: str) -> Cluster:
    c = cluster_factory(app=APP, env=env)
    worker = c.start_worker("w")
    c.start_ingress()
    c.wait_leading(worker)
    return c


def test_sleepers_survive_a_worker_restart_and_wake_on_time(
    cluster_factory: Callable[..., Cluster],
) -> None:
    metrics = free_port()
    c = started(cluster_factory, PERDURE_METRICS_PORT=str(metrics))
    with httpx.Client(base_url=c.url, timeout=30) as client:
        ids = [
            client.post("/tests/sleeper/send", json=2000).json()["invocationId"] for _ in range(200)
        ]
    wait_until(
        lambda: metric(metrics, "perdure_suspensions_total") >= 200,
        30,
        "every sleeper armed and suspended",
    )
    # What an operator watches: the timers armed, attempts by handler, the leader's epochs.
    assert metric(metrics, "perdure_timers_pending") >= 1
    started_sleepers = 'perdure_attempts_started_total{handler="sleeper",service="tests"}'
    assert metric(metrics, started_sleepers) >= 200
    assert (
        "perdure_leader_epoch{partition=" in httpx.get(f"http://127.0.0.1:{metrics}/metrics").text
    )
    assert "perdure_log_lag_records" in httpx.get(f"http://127.0.0.1:{metrics}/metrics").text
    worker = c.procs[0]
    worker.kill9()
    restarted = c.start_worker("w")
    c.wait_leading(restarted)
    leading_at = time.time()
    wait_until(
        lambda: len({line[1] for line in c.ledger_lines() if line[0] == "woke"}) >= 200,
        60,
        "200 sleepers woke",
    )
    # A sleeper that woke before the kill but had not completed replays on the new worker: the
    # ledger line after its steps is written again, with the journalled values. Its steps ran
    # once: one (asked, woke) pair per invocation.
    seen = {(line[1], line[2], line[3]) for line in c.ledger_lines() if line[0] == "woke"}
    woke = {inv: (float(asked), float(at)) for inv, asked, at in seen}
    assert sorted(woke) == sorted(ids), "every sleeper finished"
    assert len(seen) == 200, "a sleeper's step ran twice"
    for inv, (asked, at) in woke.items():
        assert at >= asked + 2.0, f"{inv} woke {asked + 2.0 - at:.3f}s early"
        late = at - max(asked + 2.0, leading_at)
        assert late <= 1.0, f"{inv} woke {late:.3f}s late after the restart"


def test_delayed_send_runs_once_after_its_delay_across_a_restart(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = started(cluster_factory)
    sent_at = time.time()
    r = httpx.post(f"{c.url}/tests/stamp/send?delay=3s", json="d1", timeout=30)
    assert r.status_code == 202
    inv = r.json()["invocationId"]
    early = httpx.get(f"{c.url}/restate/invocation/{inv}/output", timeout=30)
    assert early.status_code == 470  # answered by its partition: the timer is in its store
    c.procs[0].kill9()
    restarted = c.start_worker("w")
    c.wait_leading(restarted)
    wait_until(lambda: any(line[0] == "stamp" for line in c.ledger_lines()), 30, "the delayed run")
    # Once its output is there the invocation has completed: no second run can follow.
    attached = httpx.get(f"{c.url}/restate/invocation/{inv}/attach", timeout=30)
    assert attached.status_code == 200
    stamps = [float(line[2]) for line in c.ledger_lines() if line[0] == "stamp"]
    assert len(stamps) == 1
    assert stamps[0] >= sent_at + 3.0
    out = httpx.get(f"{c.url}/restate/invocation/{inv}/output", timeout=30)
    assert out.status_code == 200
    bad = httpx.post(f"{c.url}/tests/stamp/send?delay=soon", json="x", timeout=30)
    assert bad.status_code == 400
    on_call = httpx.post(f"{c.url}/tests/stamp?delay=1s", json="x", timeout=30)
    assert on_call.status_code == 400


def test_delayed_send_from_a_handler(cluster_factory: Callable[..., Cluster]) -> None:
    c = started(cluster_factory)
    r = httpx.post(f"{c.url}/tests/delayed_echo", json=1500, timeout=30)
    callee = r.json()
    assert httpx.get(f"{c.url}/restate/invocation/{callee}/output", timeout=30).status_code == 470
    attached = httpx.get(f"{c.url}/restate/invocation/{callee}/attach", timeout=30)
    assert attached.status_code == 200
    assert time.time() - attached.json()["sent_at"] >= 1.5


def test_random_uuid_and_time_are_the_same_on_replay(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = started(cluster_factory)
    r = httpx.post(f"{c.url}/tests/dice", timeout=30)
    assert r.status_code == 200
    inv = r.headers["x-restate-id"]
    runs = [line[2:] for line in c.ledger_lines() if line[1] == inv]
    assert len(runs) >= 3, "the sleep suspended the handler and it was replayed"
    assert all(run == runs[0] for run in runs)
    assert [str(v) for v in r.json()] == runs[0]
    other = httpx.post(f"{c.url}/tests/dice", timeout=30).json()
    assert other[:2] != r.json()[:2], "each invocation has its own seed"


def test_select_between_timer_and_awakeable_replays_the_same_winner(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = started(cluster_factory)

    def lines(kind: str, inv: str) -> list[list[str]]:
        return [line for line in c.ledger_lines() if line[0] == kind and line[1] == inv]

    # The timer wins; the awakeable is resolved afterwards, before the replay.
    inv = httpx.post(f"{c.url}/tests/race/send", json=300, timeout=30).json()["invocationId"]
    wait_until(lambda: lines("race", inv), 30, "the race")
    awakeable = lines("race-awakeable", inv)[0][2]
    late = httpx.post(f"{c.url}/restate/awakeables/{awakeable}/resolve", json=1, timeout=30)
    assert late.status_code == 202
    out = httpx.get(f"{c.url}/restate/invocation/{inv}/attach", timeout=30)
    assert out.json() == "timeout"
    assert {line[2] for line in lines("race", inv) + lines("race-after", inv)} == {"timeout"}
    assert len(lines("race", inv)) >= 2, "the decision was replayed"

    # The awakeable wins.
    inv = httpx.post(f"{c.url}/tests/race/send", json=20_000, timeout=30).json()["invocationId"]
    wait_until(lambda: lines("race-awakeable", inv), 30, "the awakeable")
    awakeable = lines("race-awakeable", inv)[0][2]
    httpx.post(f"{c.url}/restate/awakeables/{awakeable}/resolve", json=1, timeout=30)
    out = httpx.get(f"{c.url}/restate/invocation/{inv}/attach", timeout=30)
    assert out.json() == "done"
    assert {line[2] for line in lines("race", inv) + lines("race-after", inv)} == {"done"}
