"""Awakeables completed over HTTP and from handlers; a waiting invocation holds no task (5.3)."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from tests.cluster import Cluster, free_port, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.integration]


def running_handlers(metrics_port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    m = re.search(r"^perdure_handlers_running (\S+)$", text, re.M)
    assert m is not None
    return float(m.group(1))


def awakeable_of(c: Cluster, tag: str) -> str:
    wait_until(lambda: any(x[:2] == ["awakeable", tag] for x in c.ledger_lines()), 30, tag)
    return next(x[2] for x in c.ledger_lines() if x[:2] == ["awakeable", tag])


def test_awakeables(cluster_factory: Callable[..., Cluster]) -> None:
    metrics_port = free_port()
    c = cluster_factory(app="tests.apps.testapp:app")
    worker = c.start_worker("w", env={"PERDURE_METRICS_PORT": str(metrics_port)})
    c.start_ingress()
    c.wait_leading(worker)
    url = c.url

    # Resolved over HTTP: the handler wakes with the value.
    inv = httpx.post(f"{url}/tests/wait_awakeable/send", json="a", timeout=30).json()[
        "invocationId"
    ]
    awakeable = awakeable_of(c, "a")
    wait_until(lambda: running_handlers(metrics_port) == 0, 10, "the waiting handler to suspend")
    r = httpx.post(f"{url}/restate/awakeables/{awakeable}/resolve", json={"ok": 1}, timeout=30)
    assert r.status_code == 202
    out = httpx.get(f"{url}/restate/invocation/{inv}/attach", timeout=30)
    assert out.json() == "resolved: {'ok': 1}"
    again = httpx.post(f"{url}/restate/awakeables/{awakeable}/resolve", json=2, timeout=30)
    assert again.status_code == 409
    assert "already completed" in again.json()["message"]

    # Rejected over HTTP: the handler gets a terminal error.
    inv = httpx.post(f"{url}/tests/wait_awakeable/send", json="b", timeout=30).json()[
        "invocationId"
    ]
    awakeable = awakeable_of(c, "b")
    r = httpx.post(f"{url}/restate/awakeables/{awakeable}/reject", content=b"no way", timeout=30)
    assert r.status_code == 202
    out = httpx.get(f"{url}/restate/invocation/{inv}/attach", timeout=30)
    assert out.json() == "rejected: no way"

    # From another handler; a second handler completing it gets a clear error.
    inv = httpx.post(f"{url}/tests/wait_awakeable/send", json="c", timeout=30).json()[
        "invocationId"
    ]
    awakeable = awakeable_of(c, "c")
    first = httpx.post(f"{url}/tests/resolve_other", json=awakeable, timeout=30)
    assert first.json() == "done"
    second = httpx.post(f"{url}/tests/resolve_other", json=awakeable, timeout=30)
    assert second.json() == "409: the awakeable was already completed"
    out = httpx.get(f"{url}/restate/invocation/{inv}/attach", timeout=30)
    assert out.json() == "resolved: from a handler"

    # Unknown and malformed ids are 404.
    fake = awakeable[:-1] + ("9" if awakeable[-1] != "9" else "8")
    assert (
        httpx.post(f"{url}/restate/awakeables/{fake}/resolve", json=1, timeout=30).status_code
        == 404
    )
    assert (
        httpx.post(f"{url}/restate/awakeables/nope/resolve", json=1, timeout=30).status_code == 404
    )
