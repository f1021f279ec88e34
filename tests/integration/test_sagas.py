"""Cancellation, kill and the booking saga's durable compensations (issue 5, tests 4 and 5)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest

from tests.cluster import Cluster, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.integration, pytest.mark.fault]


def start(cluster_factory: Callable[..., Cluster], **env: str) -> Cluster:
    c = cluster_factory(app="tests.apps.testapp:app", env=env)
    worker = c.start_worker("w")
    c.start_ingress()
    c.wait_leading(worker)
    return c


def steps(c: Cluster, trip: str) -> list[str]:
    lines = c.ledger_lines()
    return [line[0] for line in lines if line[1] == trip and not line[0].startswith("slow:")]


def inside(c: Cluster, trip: str, step: str) -> bool:
    """Whether the (slowed) step has begun: examples/booking.py notes it."""
    return [f"slow:{step}", trip] in [line[:2] for line in c.ledger_lines()]


def book_in_background(c: Cluster, trip: dict) -> tuple[threading.Thread, list[httpx.Response]]:
    out: list[httpx.Response] = []
    t = threading.Thread(
        target=lambda: out.append(httpx.post(f"{c.url}/booking/book_trip", json=trip, timeout=120)),
        daemon=True,
    )
    t.start()
    return t, out


def test_cancel_during_step_two_runs_compensations_once(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = start(cluster_factory, PERDURE_EXAMPLE_SLOW="book-hotel:2")
    t, out = book_in_background(c, {"tripId": "t1"})
    wait_until(lambda: steps(c, "t1") == ["book-flight"], 30, "step 1")
    wait_until(lambda: inside(c, "t1", "book-hotel"), 30, "step 2 to begin")
    inv = _invocation_of(c, "t1")
    r = httpx.delete(f"{c.url}/restate/invocation/{inv}", timeout=30)
    assert r.status_code == 202
    t.join(60)
    assert out[0].status_code == 409
    assert "cancelled" in out[0].json()["message"]
    # The answer came after the handler ended, so its compensations are all in the ledger.
    assert steps(c, "t1") == ["book-flight", "book-hotel", "cancel-hotel", "cancel-flight"]
    again = httpx.delete(f"{c.url}/restate/invocation/{inv}", timeout=30)
    assert again.status_code == 409


def test_kill_during_step_two_runs_nothing_further(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = start(cluster_factory, PERDURE_EXAMPLE_SLOW="book-hotel:1")
    t, out = book_in_background(c, {"tripId": "t2"})
    wait_until(lambda: steps(c, "t2") == ["book-flight"], 30, "step 1")
    inv = _invocation_of(c, "t2")
    r = httpx.delete(f"{c.url}/restate/invocation/{inv}?mode=kill", timeout=30)
    assert r.status_code == 202
    t.join(60)
    assert out[0].status_code == 409
    assert "killed" in out[0].json()["message"]
    # The step that was running when it was killed ends on its own (a thread cannot be
    # stopped); after it, nothing: no compensation, no next step.
    wait_until(lambda: "book-hotel" in steps(c, "t2"), 30, "the running step to end")
    assert httpx.delete(f"{c.url}/restate/invocation/{inv}", timeout=30).status_code == 409
    later = steps(c, "t2")
    assert later[:1] == ["book-flight"]
    assert not [s for s in later if s.startswith("cancel") or s == "book-car"]


def test_failed_car_compensates_exactly_once_through_a_kill(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = start(cluster_factory, PERDURE_EXAMPLE_SLOW="cancel-hotel:3")
    t, out = book_in_background(c, {"tripId": "t3", "failCar": True})
    wait_until(lambda: "cancel-car" in steps(c, "t3"), 30, "the compensation to start")
    wait_until(lambda: inside(c, "t3", "cancel-hotel"), 30, "cancel-hotel to begin")
    c.procs[0].kill9()
    restarted = c.start_worker("w")
    c.wait_leading(restarted)
    t.join(90)
    assert out, "the caller never got an answer"
    assert out[0].status_code == 409
    assert "no availability" in out[0].json()["message"]
    wait_until(lambda: "cancel-flight" in steps(c, "t3"), 30, "all compensations")
    done = steps(c, "t3")
    assert done.count("cancel-flight") == 1
    assert done.count("cancel-hotel") == 1
    assert done == ["book-flight", "book-hotel", "cancel-car", "cancel-hotel", "cancel-flight"]


def _invocation_of(c: Cluster, trip: str) -> str:
    """From the idempotency key the first step passed to the booking API."""
    line = next(
        line for line in c.ledger_lines() if line[1] == trip and not line[0].startswith("slow:")
    )
    return line[2].split(":")[0]


def test_cancel_reaches_the_call_a_handler_waits_on(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = start(cluster_factory)
    parent = httpx.post(f"{c.url}/tests/wait_on_child/send", json="kid", timeout=30).json()
    wait_until(
        lambda: any(line[:2] == ["awakeable", "kid"] for line in c.ledger_lines()), 30, "child"
    )
    r = httpx.post(f"{c.url}/tests/cancel_other", json=parent["invocationId"], timeout=30)
    assert r.json() == "cancelled"
    out = httpx.get(f"{c.url}/restate/invocation/{parent['invocationId']}/attach", timeout=30)
    assert out.status_code == 409
    assert out.json()["message"] == "parent: the invocation was cancelled"
    wait_until(
        lambda: any(line[:2] == ["compensated", "kid"] for line in c.ledger_lines()), 30, "undo"
    )
    # The child was cancelled too: its awakeable can no longer be completed.
    awakeable = next(line[2] for line in c.ledger_lines() if line[:2] == ["awakeable", "kid"])
    late = httpx.post(f"{c.url}/restate/awakeables/{awakeable}/resolve", json=1, timeout=30)
    assert late.status_code in (404, 409)
    again = httpx.post(f"{c.url}/tests/cancel_other", json=parent["invocationId"], timeout=30)
    assert again.json().startswith("409")
