"""The test runtime and a real cluster agree: one scenario, run in TestRuntime and over HTTP on
the real broker, gives the same results, the same journal entries and the same state.

The scenario (tests/apps/scenario.py) has state, a durable call between a service and an
object, a timer, an awakeable resolved from outside, and a cancelled sleep.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from perdure import TerminalError
from perdure.partitions.testing import TestRuntime
from tests.apps import scenario
from tests.cluster import Cluster, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.integration]


def journal_shape(entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["kind"], e["name"], e["status"]) for e in entries]


def awakeable_in(ledger: Path, who: str) -> str | None:
    for line in ledger.read_text().splitlines() if ledger.exists() else []:
        fields = line.split("\t")
        if fields[:2] == ["awakeable", who]:
            return fields[2]
    return None


def over_http(c: Cluster) -> dict[str, Any]:
    url = c.url
    sent = httpx.post(f"{url}/trips/plan/send", json="ann", timeout=30).json()["invocationId"]
    wait_until(lambda: awakeable_in(c.ledger, "ann") is not None, 30, "the awakeable")
    awakeable = awakeable_in(c.ledger, "ann")
    r = httpx.post(f"{url}/restate/awakeables/{awakeable}/resolve", json="yes", timeout=30)
    assert r.status_code == 202, r.text
    result = httpx.get(f"{url}/restate/invocation/{sent}/attach", timeout=30).json()
    journal = httpx.get(f"{c.admin_url}/invocations/{sent}", timeout=30).json()["journal"]
    state = httpx.get(f"{c.admin_url}/services/accounts/state/ann", timeout=30).json()

    lingering = httpx.post(f"{url}/trips/linger/send", timeout=30).json()["invocationId"]
    wait_until(
        lambda: (
            httpx.get(f"{c.admin_url}/invocations/{lingering}", timeout=30).json()["status"]
            == "suspended"
        ),
        30,
        "the sleeper to suspend",
    )
    assert httpx.delete(f"{url}/restate/invocation/{lingering}", timeout=30).status_code == 202
    cancelled = httpx.get(f"{url}/restate/invocation/{lingering}/attach", timeout=30)
    return {
        "result": result,
        "journal": journal_shape(journal),
        "state": state,
        "cancelled": (cancelled.status_code, cancelled.json()["message"]),
    }


async def in_runtime(ledger: Path) -> dict[str, Any]:
    async with TestRuntime(scenario.app) as rt:
        sent = await rt.send(scenario.plan, "ann")
        await rt.advance(timedelta(milliseconds=300))  # the plan's sleep
        awakeable = awakeable_in(ledger, "ann")
        assert awakeable is not None
        await rt.resolve_awakeable(awakeable, "yes")
        result = await sent.result()
        journal = rt.describe(sent.id)["journal"]
        assert [e.name for e in rt.journal(sent.id)] == [e["name"] for e in journal]
        state = rt.state(scenario.deposit, "ann")
        lingering = await rt.send(scenario.linger)
        await rt.settle()
        await rt.cancel(lingering.id)
        with pytest.raises(TerminalError) as cancelled:
            await lingering.result()
    return {
        "result": result,
        "journal": journal_shape(journal),
        "state": state,
        "cancelled": (cancelled.value.status_code, cancelled.value.message),
    }


def test_the_same_scenario_gives_the_same_results_journal_and_state(
    cluster_factory: Callable[..., Cluster], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = cluster_factory(app="tests.apps.scenario:app")
    worker = c.start_worker()
    c.start_ingress()
    c.start_admin()
    c.wait_leading(worker)
    http = over_http(c)

    ledger = tmp_path / "runtime-ledger.txt"
    monkeypatch.setenv("PERDURE_EXAMPLE_LEDGER", str(ledger))
    local = asyncio.run(in_runtime(ledger))

    assert (
        local["result"]
        == http["result"]
        == {
            "who": "ann",
            "quote": 30,
            "total": 30,
            "reply": "yes",
        }
    )
    assert local["journal"] == http["journal"], (local["journal"], http["journal"])
    assert [kind for kind, _, _ in local["journal"]] == ["run", "call", "sleep", "awakeable", "run"]
    assert local["cancelled"] == http["cancelled"]
    assert local["state"] == {"total": 30, "last": 30}
    over_http_state = {k: json.loads(v["text"]) for k, v in http["state"]["state"].items()}
    assert over_http_state == local["state"], http["state"]
