"""Liveness and readiness that mean something: with Kafka down, say so, and fail calls fast."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.cluster import Cluster, free_port, wait_until
from tests.conftest import Broker

pytestmark = [pytest.mark.kafka, pytest.mark.integration, pytest.mark.fault]


def test_with_kafka_down_readiness_and_calls_say_so_and_liveness_holds(
    cluster_factory: Callable[..., Cluster], broker: Broker
) -> None:
    c = cluster_factory(app="tests.apps.testapp:app", partitions=2)
    w = c.start_worker()
    ingress = c.start_ingress()
    c.start_admin(port=free_port())
    c.wait_leading(w)
    assert httpx.get(f"{c.url}/health/ready", timeout=5).status_code == 200
    broker.kill9()
    try:

        def unready() -> bool:
            return httpx.get(f"{c.url}/health/ready", timeout=5).status_code == 503

        wait_until(unready, 30, "the ingress to say it is not ready")
        r = httpx.get(f"{c.url}/health", timeout=5)
        assert f"Kafka at {c.bootstrap} cannot be reached" in r.json()["message"], r.text
        assert httpx.get(f"{c.url}/health/live", timeout=5).status_code == 200
        # Each process probes on its own clock: the admin may say it up to a probe later.
        wait_until(
            lambda: "cannot be reached" in httpx.get(f"{c.admin_url}/health/ready", timeout=5).text,
            10,
            "the admin to say Kafka cannot be reached",
        )
        assert httpx.get(f"{c.admin_url}/health/live", timeout=5).status_code == 200
        started = time.monotonic()
        call = httpx.post(f"{c.url}/tests/echo", json=1, timeout=30)
        assert call.status_code == 503, call.text
        assert "cannot be reached" in call.json()["message"] and "nothing was logged" in call.text
        assert time.monotonic() - started < 2, "a call waited for the producer's timeout"
        time.sleep(12)  # librdkafka retries connecting all this while
    finally:
        broker.start()
    wait_until(
        lambda: httpx.get(f"{c.url}/health/ready", timeout=5).status_code == 200,
        60,
        "the ingress to be ready again",
    )
    assert httpx.post(f"{c.url}/tests/echo", json=2, timeout=60).json() == 2
    # The client library's complaints are rate-limited: a few lines, not thousands.
    lines = ingress.log().splitlines()
    assert len(lines) < 80, "\n".join(lines[-20:])
    assert not [line for line in lines if line.startswith("%")], "a client logs past logging"
