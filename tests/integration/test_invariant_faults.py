"""Issue 9's faults on real processes: each test failed on the main the issue started from.

Bad arguments must not stop workers, an accepted call must never be answered as if it were
not, a missing handler must not fail work for good, a cancel must stop a retrying invocation,
and a workflow's state is visible while it runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.cluster import Cluster, wait_until
from tests.conftest import Broker

pytestmark = [pytest.mark.kafka, pytest.mark.integration]

APP = "tests.apps.testapp:app"


def test_a_malformed_id_from_a_handler_fails_that_call_not_the_worker(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = cluster_factory(app=APP, partitions=2)
    worker = c.start_worker()
    c.wait_leading(worker)
    c.start_ingress()
    r = httpx.post(f"{c.url}/tests/cancel_other", json="garbage", timeout=30)
    assert r.status_code == 200, r.text
    assert r.json().startswith("400: cancel_invocation: not an invocation id")
    # Every leader used to re-deliver the bad entry and stop: the worker stays, and serves.
    time.sleep(2)
    assert worker.alive(), worker.log()[-2000:]
    ok = httpx.post(f"{c.url}/tests/echo", json={"still": "here"}, timeout=30)
    assert ok.status_code == 200 and ok.json() == {"still": "here"}
    assert "processor loop failed" not in worker.log()


@pytest.mark.fault
def _runs(c: Cluster, step: str, key: str) -> int:
    """How often ``step`` of slow_steps ran for ``key`` (its lines also say where and when)."""
    return sum(1 for line in c.ledger_lines() if line[:2] == [step, key])


def test_a_call_accepted_before_a_broker_outage_gets_its_result_not_a_503(
    cluster_factory: Callable[..., Cluster], broker: Broker
) -> None:
    # Producers give a record up after 3 s, so the outage outlasts every message timeout.
    env = {"PERDURE_PRODUCE_TIMEOUT_S": "3", "PERDURE_TEST_PAUSE": "4"}
    c = cluster_factory(app=APP, partitions=2, env=env)
    worker = c.start_worker()
    c.wait_leading(worker)
    c.start_ingress()
    answer: list[httpx.Response] = []

    def call() -> None:
        answer.append(httpx.post(f"{c.url}/tests/slow_steps", json="outage", timeout=170))

    caller = threading.Thread(target=call)
    caller.start()
    wait_until(lambda: _runs(c, "slow-one", "outage") == 1, 30, "step one")
    broker.kill9()  # step two is pending: its proposal cannot reach the log
    time.sleep(10)
    broker.start()
    caller.join(150)
    assert answer, "the call never returned"
    assert answer[0].status_code == 200, answer[0].text
    assert answer[0].json() == 2
    assert _runs(c, "slow-one", "outage") == 1, "an acknowledged step never runs again"
    assert 1 <= _runs(c, "slow-two", "outage") <= 2
    assert worker.alive()


def test_pending_work_of_a_missing_handler_waits_for_a_worker_that_has_it(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = cluster_factory(app=APP, partitions=1)
    full = c.start_worker("full")
    c.wait_leading(full)
    c.start_ingress()
    full.stop()
    # A worker of another app (no tests service) leads the partition next.
    c.app = "perdure.examples.payments:app"
    other = c.start_worker("payments-only")
    c.wait_leading(other)
    sent = httpx.post(f"{c.url}/tests/echo/send", json="later", timeout=30)
    assert sent.status_code == 202
    invocation_id = sent.json()["invocationId"]
    other.wait_for_log("no handler tests/echo on this worker", 30)
    out = httpx.get(f"{c.url}/restate/invocation/{invocation_id}/output", timeout=30)
    assert out.status_code == 470, f"never failed for good: {out.text}"
    c.app = APP
    back = c.start_worker("full-again")
    other.stop()
    c.wait_leading(back)

    def done() -> bool:
        r = httpx.get(f"{c.url}/restate/invocation/{invocation_id}/output", timeout=30)
        return r.status_code == 200 and r.json() == "later"

    wait_until(done, 60, "the invocation to complete on a worker that hosts it")


def test_a_cancel_stops_an_invocation_that_is_backing_off(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = cluster_factory(app=APP, partitions=2)
    worker = c.start_worker()
    c.wait_leading(worker)
    c.start_ingress()
    sent = httpx.post(f"{c.url}/tests/raises_every_time/send", json="r", timeout=30)
    invocation_id = sent.json()["invocationId"]
    wait_until(lambda: c.ledger_lines().count(["raiser-attempt", "r"]) >= 1, 30, "a failure")
    r = httpx.delete(f"{c.url}/restate/invocation/{invocation_id}", timeout=30)
    assert r.status_code == 202, r.text
    out = httpx.get(f"{c.url}/restate/invocation/{invocation_id}/attach", timeout=30)
    assert out.status_code == 409, out.text
    assert "cancelled" in out.json()["message"]
    attempts = c.ledger_lines().count(["raiser-attempt", "r"])
    assert attempts <= 2, "at most the attempt the cancel cut the back-off short for"
    # Its leader acted on the end: the retry it had armed is cancelled with the invocation,
    # and the partition starts nothing of a completed invocation.
    worker.wait_for_log(rf"invocation {invocation_id} cancelled", 30)
    assert c.ledger_lines().count(["raiser-attempt", "r"]) == attempts
    assert c.ledger_lines().count(["raiser-step", "r"]) == 1


def test_a_workflows_state_is_visible_while_it_runs(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = cluster_factory(app=APP, partitions=2)
    worker = c.start_worker()
    c.wait_leading(worker)
    c.start_ingress()
    r = httpx.post(f"{c.url}/signup/bob/run/send", json={"email": "bob@example.com"}, timeout=30)
    assert r.status_code == 202

    def status() -> object:
        return httpx.post(f"{c.url}/signup/bob/status", timeout=30).json()

    wait_until(lambda: status() == "waiting for verification", 30, "the status while it waits")
    code = next(line[2] for line in c.ledger_lines() if line[:2] == ["mail", "bob@example.com"])
    assert httpx.post(f"{c.url}/signup/bob/verify", json=code, timeout=30).json() == "thanks"
    done = httpx.get(f"{c.url}/restate/workflow/signup/bob/attach", timeout=30)
    assert done.status_code == 200 and done.json()["verified"] is True
    assert status() == "verified"
