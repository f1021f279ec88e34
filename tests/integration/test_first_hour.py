"""What a newcomer (or a Restate client) tries first, over real HTTP (issue 10)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from perdure.engine.ids import workflow_run_id
from tests.cluster import Cluster, serving

pytestmark = [pytest.mark.kafka, pytest.mark.integration]


@pytest.fixture
def c(cluster_factory: Callable[..., Cluster]) -> Cluster:
    env = {"PERDURE_ACCESS_LOG": "1"}
    return serving(cluster_factory, app="tests.apps.testapp:app", partitions=2, env=env)


def test_keys_are_url_encoded_segments_and_may_be_empty(c: Cluster) -> None:
    with httpx.Client(base_url=c.url, timeout=30) as h:
        assert h.post("/counter/a%2Fb/add", json=2).json() == 2
        assert h.post("/counter/a%2Fb/get").json() == 2
        assert h.post("/counter/a/get").json() == 0, "a/b is one key, not a path"
        assert h.post("/counter//add", json=5).json() == 5
        assert h.post("/restate/call/counter//get").json() == 5


def test_restates_current_paths(c: Cluster) -> None:
    with httpx.Client(base_url=c.url, timeout=30) as h:
        assert h.post("/restate/call/tests/echo", json={"a": 1}).json() == {"a": 1}
        assert h.get("/restate/call/tests/no_input").status_code == 200
        sent = h.post("/restate/send/tests/echo", json="s")
        assert sent.status_code == 202
        invocation_id = sent.json()["invocationId"]
        assert h.get(f"/restate/attach/{invocation_id}").json() == "s"
        assert h.get(f"/restate/output/{invocation_id}").json() == "s"
        delayed = h.post("/tests/echo/send?delay=1000", json="later")
        assert delayed.status_code == 202, delayed.text
        keyed = h.post("/tests/echo", json="once", headers={"idempotency-key": "k1"})
        assert keyed.status_code == 200
        legacy = h.get("/restate/invocation/tests/echo/k1/attach")
        assert legacy.json() == "once"
        by_target = h.post(
            "/restate/output",
            json={
                "target": "idempotentInvocation",
                "service": "tests",
                "handler": "echo",
                "idempotencyKey": "k1",
            },
        )
        assert by_target.json() == "once"
        lookup = h.post(
            "/restate/lookup",
            json={"target": "workflow", "workflowName": "signup", "workflowKey": "z"},
        )
        assert lookup.json() == {"invocationId": str(workflow_run_id("signup", "z"))}
        assert h.get("/restate/health").status_code == 200
    ingress = next(p for p in c.procs if p.name == "ingress")
    assert '"POST /restate/call/tests/echo HTTP/1.1" 200' in ingress.log(), "the access log"


def test_every_error_has_one_shape(c: Cluster) -> None:
    with httpx.Client(base_url=c.url, timeout=30) as h:
        wrong_method = h.get("/tests/echo")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["code"] == 405 and "message" in wrong_method.json()
        deep = "[" * 100_000 + "]" * 100_000
        too_deep = h.post("/tests/echo", content=deep, headers={"content-type": "application/json"})
        assert too_deep.status_code == 400, too_deep.text
        assert too_deep.json()["code"] == 400
        bad_lookup = h.post("/restate/lookup", json={"target": "nope"})
        assert bad_lookup.status_code == 400 and bad_lookup.json()["code"] == 400


def test_api_docs_describe_the_registered_handlers(c: Cluster) -> None:
    with httpx.Client(base_url=c.url, timeout=30) as h:
        doc = h.get("/openapi.json").json()
        assert "/tests/typed" in doc["paths"]
        schema = doc["paths"]["/tests/typed"]["post"]["requestBody"]["content"]
        assert schema["application/json"]["schema"]["title"] == "Order"
        assert "/{path}" not in doc["paths"], "no catch-all route in the document"
        docs = h.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
