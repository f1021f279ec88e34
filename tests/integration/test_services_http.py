"""Durable services over real HTTP, Kafka and worker processes (issue 3, tests 1 and 7)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from tests.cluster import Cluster

pytestmark = [pytest.mark.kafka, pytest.mark.integration]

ORDER = {"orderId": "o-1", "userId": "u-7", "amount": 42}


@pytest.fixture
def cluster(cluster_factory: Callable[..., Cluster]) -> Cluster:
    c = cluster_factory(app="tests.apps.testapp:app")
    worker = c.start_worker()
    c.start_ingress()
    c.wait_leading(worker)
    return c


def post(c: Cluster, path: str, body: object = None, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{c.url}{path}", json=body, timeout=60, **kwargs)  # type: ignore[arg-type]


def test_payment_example_returns_its_result_and_runs_each_step_once(cluster: Cluster) -> None:
    r = post(cluster, "/payments/process_payment", ORDER)
    assert r.status_code == 200, r.text
    assert r.json() == {"orderId": "o-1", "chargeId": "ch-u-7-42", "status": "completed"}
    assert r.headers["x-restate-id"].startswith("inv_")
    apis = [line[0] for line in cluster.ledger_lines()]
    assert apis == ["reserve", "charge", "confirm", "email"]


def test_terminal_error_gives_its_status_and_message(cluster: Cluster) -> None:
    r = post(cluster, "/tests/conflict", "order o-9")
    assert r.status_code == 409
    assert r.json() == {"code": 409, "message": "order o-9 already exists"}
    assert r.headers["x-restate-id"].startswith("inv_")


def test_handler_that_fails_twice_then_succeeds_returns_200(cluster: Cluster) -> None:
    r = post(cluster, "/tests/flaky", "k1")
    assert r.status_code == 200, r.text
    assert r.json() == {"key": "k1", "attempts": 3}


def test_retries_end_in_a_terminal_failure_after_the_last_attempt(cluster: Cluster) -> None:
    r = post(cluster, "/tests/always_fails")
    assert r.status_code == 500
    assert "failed after 3 attempts" in r.json()["message"]


def test_step_retries_in_place_under_run_options(cluster: Cluster) -> None:
    r = post(cluster, "/tests/step_retries", "s1")
    assert r.status_code == 200, r.text
    assert r.json() == 3


def test_typed_input_and_output_are_converted(cluster: Cluster) -> None:
    r = post(cluster, "/tests/typed", {"order_id": "a", "amount": 3})
    assert r.status_code == 200, r.text
    assert r.json() == {"order_id": "a", "total": 6}


def test_step_idempotency_keys_are_per_step(cluster: Cluster) -> None:
    r = post(cluster, "/tests/idempotency_keys")
    inv = r.headers["x-restate-id"]
    assert r.json() == [f"{inv}:0", f"{inv}:1"]


def test_send_then_output_and_attach_by_id(cluster: Cluster) -> None:
    r = post(cluster, "/tests/echo/send", {"x": 1})
    assert r.status_code == 202
    body = r.json()
    assert body["status"] == "Accepted"
    inv = body["invocationId"]
    attached = httpx.get(f"{cluster.url}/restate/invocation/{inv}/attach", timeout=30)
    assert attached.status_code == 200
    assert attached.json() == {"x": 1}
    out = httpx.get(f"{cluster.url}/restate/invocation/{inv}/output", timeout=30)
    assert out.status_code == 200
    assert out.json() == {"x": 1}


def test_idempotency_key_runs_the_handler_once(cluster: Cluster) -> None:
    headers = {"idempotency-key": "pay-1"}
    first = post(cluster, "/payments/process_payment", ORDER, headers=headers)
    second = post(cluster, "/payments/process_payment", ORDER, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.headers["x-restate-id"] == second.headers["x-restate-id"]
    assert len(cluster.ledger_lines()) == 4
    sent = post(cluster, "/payments/process_payment/send", ORDER, headers=headers)
    assert sent.status_code == 202
    assert sent.json()["status"] == "PreviouslyAccepted"
    assert sent.json()["invocationId"] == first.headers["x-restate-id"]
    fresh = post(cluster, "/payments/process_payment/send", ORDER, headers={"idempotency-key": "x"})
    assert fresh.json()["status"] == "Accepted"


def test_handler_without_input_accepts_an_empty_body(cluster: Cluster) -> None:
    r = httpx.post(f"{cluster.url}/tests/no_input", timeout=30)
    assert r.status_code == 200
    assert r.json() == r.headers["x-restate-id"]


# --- bad input (test 7) --------------------------------------------------------------------------


def test_unknown_service_or_handler_is_404_and_nothing_is_logged(cluster: Cluster) -> None:
    r = post(cluster, "/nosuch/handler", {})
    assert r.status_code == 404
    assert r.json()["code"] == 404
    assert "nosuch" in r.json()["message"]
    r = post(cluster, "/tests/nosuch", {})
    assert r.status_code == 404
    assert "nosuch" in r.json()["message"]


def test_body_that_is_not_json_is_400(cluster: Cluster) -> None:
    r = httpx.post(f"{cluster.url}/tests/echo", content=b"{not json", timeout=30)
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["message"]


def test_body_that_does_not_validate_is_400(cluster: Cluster) -> None:
    r = post(cluster, "/tests/typed", {"order_id": "a", "amount": -3})
    assert r.status_code == 400
    assert "does not validate" in r.json()["message"]


def test_body_over_the_limit_is_413(cluster: Cluster) -> None:
    big = b'"' + b"x" * (10 * 1024 * 1024 + 10) + b'"'
    r = httpx.post(f"{cluster.url}/tests/echo", content=big, timeout=60)
    assert r.status_code == 413
    assert r.json()["code"] == 413


def test_unknown_invocation_id_is_404_and_a_malformed_one_400(cluster: Cluster) -> None:
    missing = "inv_" + "a" * 32
    r = httpx.get(f"{cluster.url}/restate/invocation/{missing}/output", timeout=30)
    assert r.status_code == 404
    r = httpx.get(f"{cluster.url}/restate/invocation/nope/output", timeout=30)
    assert r.status_code == 400


def test_output_of_a_running_invocation_is_not_ready(cluster: Cluster) -> None:
    r = post(cluster, "/tests/slow_steps/send", "nr")
    inv = r.json()["invocationId"]
    out = httpx.get(f"{cluster.url}/restate/invocation/{inv}/output", timeout=30)
    assert out.status_code == 470
    assert "not completed" in out.json()["message"]


def test_log_that_cannot_take_the_record_is_503(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = cluster_factory(app="tests.apps.testapp:app", env={"PERDURE_PRODUCE_TIMEOUT_S": "2"})
    worker = c.start_worker()
    c.start_ingress()
    c.wait_leading(worker)
    assert post(c, "/tests/echo", 1).status_code == 200
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.delete_topics([f"{c.name}.log"])[f"{c.name}.log"].result(30)
    r = post(c, "/tests/echo", 2)
    assert r.status_code == 503
    assert "cannot take the record" in r.json()["message"]
