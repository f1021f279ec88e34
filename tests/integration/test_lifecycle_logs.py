"""Every event of an invocation's life is one line of the worker's log, with its id (issue 14).

A real worker logs JSON (``--log-format json``); the test reads its log from the outside and
checks, per invocation, the events in order: a retried one, a suspended one and one that fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.cluster import Cluster, Proc, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.integration]


def events(worker: Proc) -> dict[str, list[dict[str, Any]]]:
    """The lifecycle lines of the worker's log, by invocation id."""
    out: dict[str, list[dict[str, Any]]] = {}
    for line in worker.log().splitlines():
        if not line.startswith("{"):
            continue
        doc = json.loads(line)
        if doc["logger"] == "perdure.invocations":
            out.setdefault(doc["invocation_id"], []).append(doc)
    return out


def test_each_lifecycle_event_is_one_line_with_the_invocation_id(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = cluster_factory(app="tests.apps.testapp:app", env={"PERDURE_LOG_FORMAT": "json"})
    worker = c.start_worker("w")
    c.start_ingress()
    c.wait_leading(worker)
    with httpx.Client(base_url=c.url, timeout=60) as client:
        ids = {
            name: client.post(path, json=body).json()["invocationId"]
            for name, path, body in (
                ("flaky", "/tests/flaky/send", "log-k"),
                ("sleeper", "/tests/sleeper/send", 1500),
                ("fails", "/tests/always_fails/send", None),
            )
        }
    ended = {"completed", "failed", "cancelled", "killed"}

    def all_ended() -> bool:
        seen = events(worker)
        return all(any(e["event"] in ended for e in seen.get(i, [])) for i in ids.values())

    wait_until(all_ended, 60, "every invocation's end in the log")
    seen = events(worker)
    names = {name: [e["event"] for e in seen[i]] for name, i in ids.items()}
    three_attempts = ["invoked", *["started", "retry-scheduled"] * 2, "started"]
    assert names["flaky"] == [*three_attempts, "completed"], names
    assert names["sleeper"] == ["invoked", "started", "suspended", "resumed", "completed"], names
    assert names["fails"] == [*three_attempts, "failed"], names
    for name, i in ids.items():
        for e in seen[i]:
            assert i in e["message"], (name, e)  # the id is in the text too, for text logs
    first_failure = next(e for e in seen[ids["flaky"]] if e["event"] == "retry-scheduled")
    assert first_failure["level"] == "WARNING" and "transient failure 1" in first_failure["message"]
    invoked = seen[ids["sleeper"]][0]["message"]
    assert "tests/sleeper, running" in invoked, invoked
