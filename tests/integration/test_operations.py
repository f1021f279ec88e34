"""The admin's view of invocations: listed, filtered, described, cancelled, across workers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from perdure.engine.ids import InvocationId
from tests.cluster import Cluster, free_port, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.integration]

APP = "tests.apps.testapp:app"


def every(c: Cluster, **params: Any) -> list[dict[str, Any]]:
    """Every invocation the filter matches, page by page (small pages, to test the cursor)."""
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(500):
        query = {**params, "limit": params.get("limit", 7)}
        if cursor is not None:
            query["cursor"] = cursor
        r = httpx.get(f"{c.admin_url}/invocations", params=query, timeout=30)
        assert r.status_code == 200, r.text
        page = r.json()
        rows += page["invocations"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
    raise AssertionError("the cursor never ended")


def _sample(port: int, name: str, status: str) -> float:
    """One worker's sample of ``name{status=...}`` (0 while it does not answer)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(f'{name}{{status="{status}"}} '):
            return float(line.split()[-1])
    return 0.0


def send(c: Cluster, path: str, body: object) -> str:
    r = httpx.post(f"{c.url}/{path}/send", json=body, timeout=30)
    assert r.status_code == 202, r.text
    return str(r.json()["invocationId"])


def test_invocations_listed_filtered_and_described_across_two_workers(
    cluster_factory: Callable[..., Cluster],
) -> None:
    c = cluster_factory(app=APP, partitions=8, env={"PERDURE_TEST_PAUSE": "30"})
    metrics_ports = [free_port(), free_port()]
    a = c.start_worker("a", env={"PERDURE_METRICS_PORT": str(metrics_ports[0])})
    b = c.start_worker("b", env={"PERDURE_METRICS_PORT": str(metrics_ports[1])})
    c.start_ingress()
    c.start_admin(port=free_port())
    # Both, each some: a worker that starts first may lead all 8 until the other joins (a
    # loaded CI run once checked in between).
    wait_until(
        lambda: len(_leading(a) | _leading(b)) == 8 and _leading(a) and _leading(b),
        90,
        "two workers to lead all 8 partitions, each some",
    )

    done = [httpx.post(f"{c.url}/counter/k{i}/add", json=i, timeout=60) for i in range(20)]
    assert all(r.status_code == 200 for r in done)
    failed = httpx.post(f"{c.url}/tests/always_fails", json=None, timeout=60)
    assert failed.status_code == 500, failed.text
    sleeping = [send(c, "tests/sleeper", 600_000) for _ in range(3)]
    holder = send(c, "counter/hot/slow_add", 1)
    queued = [send(c, "counter/hot/slow_add", 1) for _ in range(2)]
    backing = send(c, "tests/raises_every_time", "t")

    def statuses() -> Counter[str]:
        return Counter(r["status"] for r in every(c))

    wait_until(
        lambda: statuses()["suspended"] == 3 and statuses()["backing-off"] == 1,
        60,
        "the sleepers to suspend and the failing one to back off",
    )
    rows = every(c)
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == len(rows), "an invocation shown twice"
    assert len(rows) == 20 + 1 + 3 + 3 + 1
    assert {by_id[i]["status"] for i in sleeping} == {"suspended"}
    assert by_id[holder]["status"] == "running"
    assert {by_id[i]["status"] for i in queued} == {"pending"}
    assert by_id[backing]["status"] in ("backing-off", "running")
    assert by_id[backing]["attempts"] >= 2 and by_id[backing]["last_error"]
    # Each row names the partition its id routes to (the id embeds its key's hash).
    assert {r["id"]: r["partition"] for r in rows} == {
        r["id"]: InvocationId.parse(r["id"]).partition(8) for r in rows
    }

    completed = every(c, status="completed", service="counter", handler="add")
    assert sorted(r["key"] for r in completed) == sorted(f"k{i}" for i in range(20))
    assert [
        r["completed_ms"] for r in completed if r["partition"] == completed[0]["partition"]
    ] == sorted(
        (r["completed_ms"] for r in completed if r["partition"] == completed[0]["partition"]),
        reverse=True,
    ), "a partition's ended invocations come newest first"
    [fail] = every(c, status="failed")
    assert fail["handler"] == "always_fails" and fail["failure"]["code"] == 500
    # Between its attempts it backs off; while one runs (milliseconds) it is running.
    wait_until(
        lambda: {r["id"] for r in every(c, status="suspended,backing-off")} == {*sleeping, backing},
        30,
        "the suspended and backing-off ones, by an index of in-flight invocations",
    )
    assert every(c, key="k3")[0]["handler"] == "add"

    # The workers' in-flight gauges agree with the list (their census runs every 5 s).
    def in_flight() -> dict[str, float]:
        return {
            status: sum(
                _sample(port, "perdure_invocations_in_flight", status) for port in metrics_ports
            )
            for status in ("scheduled", "pending", "running", "suspended", "backing-off")
        }

    wait_until(
        lambda: in_flight()["suspended"] == 3 and in_flight()["pending"] == 2,
        30,
        "the in-flight gauges to count 3 suspended and 2 pending",
    )
    gauges = in_flight()
    assert gauges["scheduled"] == 0 and gauges["running"] + gauges["backing-off"] == 2, gauges
    admin_metrics = httpx.get(f"{c.admin_url}/metrics", timeout=30).text
    assert 'perdure_admin_requests_total{code="200",method="GET",route="/invocations"}' in (
        admin_metrics
    ), admin_metrics

    d = httpx.get(f"{c.admin_url}/invocations/{sleeping[0]}", timeout=30).json()
    assert d["status"] == "suspended"
    [sleep] = [e for e in d["journal"] if e["kind"] == "sleep"]
    assert sleep["status"] == "pending" and d["suspended_on"] == [sleep["index"]]
    k5 = next(r["id"] for r in completed if r["key"] == "k5")
    d = httpx.get(f"{c.admin_url}/invocations/{k5}", params={"results": "true"}, timeout=30)
    assert d.json()["result"]["text"] == "5", d.text

    state = httpx.get(f"{c.admin_url}/services/counter/state/k7", timeout=30).json()
    assert state["state"]["value"]["text"] == "7" and len(state["version"]) == 32
    # An edit at the version read applies; the same edit again is stale: 409.
    edit = {"object_key": "k7", "version": state["version"], "new_state": {"value": 70}}
    r = httpx.post(f"{c.admin_url}/services/counter/state", json=edit, timeout=30)
    assert r.status_code == 200 and r.json()["version"] != state["version"], r.text
    r = httpx.post(f"{c.admin_url}/services/counter/state", json=edit, timeout=30)
    assert r.status_code == 409 and "is at version" in r.json()["message"], r.text
    assert httpx.post(f"{c.url}/counter/k7/add", json=1, timeout=30).json() == 71
    r = httpx.post(f"{c.admin_url}/services/tests/state", json=edit, timeout=30)
    assert r.status_code == 400, r.text
    services = httpx.get(f"{c.admin_url}/services", timeout=30).json()["services"]
    counter = next(s for s in services if s["name"] == "counter")
    assert counter["kind"] == "object" and {h["name"] for h in counter["handlers"]} >= {
        "add",
        "get",
    }

    # Cancel from the API: the sleeper ends cancelled, and the list says so.
    r = httpx.delete(f"{c.admin_url}/invocations/{sleeping[1]}", timeout=30)
    assert r.status_code == 202, r.text
    try:
        wait_until(
            lambda: {x["id"] for x in every(c, status="cancelled")} == {sleeping[1]},
            30,
            "the cancelled sleeper to be listed cancelled",
        )
    except AssertionError as err:
        d = httpx.get(f"{c.admin_url}/invocations/{sleeping[1]}", timeout=30).text
        raise AssertionError(f"{err}: {d}") from err
    r = httpx.delete(
        f"{c.admin_url}/invocations/{sleeping[2]}", params={"mode": "kill"}, timeout=30
    )
    assert r.status_code == 202, r.text
    wait_until(
        lambda: {x["id"] for x in every(c, status="killed")} == {sleeping[2]},
        30,
        "the killed sleeper to be listed killed",
    )


def test_bad_requests_get_clear_4xx(cluster_factory: Callable[..., Cluster]) -> None:
    c = cluster_factory(app=APP, partitions=2)
    w = c.start_worker()
    c.start_ingress()
    c.start_admin(port=free_port())
    c.wait_leading(w)
    url = c.admin_url
    unknown = str(InvocationId.new_unkeyed())
    cases = [
        (httpx.get(f"{url}/invocations", params={"status": "sleeping"}), 400, "unknown status"),
        (httpx.get(f"{url}/invocations", params={"created_after": "yesterday"}), 400, "ISO 8601"),
        (httpx.get(f"{url}/invocations", params={"cursor": "garbage!"}), 400, "cursor"),
        (httpx.get(f"{url}/invocations", params={"limit": 0}), 400, "greater than"),
        (httpx.get(f"{url}/invocations/not-an-id"), 400, ""),
        (httpx.delete(f"{url}/invocations/not-an-id"), 400, ""),
        (httpx.get(f"{url}/services/nope"), 404, "not found"),
        (httpx.get(f"{url}/services/tests/state/k"), 400, "no state"),
    ]
    for r, code, words in cases:
        assert r.status_code == code, (r.request.url, r.text)
        assert words in r.text, (r.request.url, r.text)
    # A cursor of one filter used with another.
    first = httpx.get(f"{url}/invocations", params={"limit": 1, "status": "completed"}).json()
    for i in range(3):
        assert httpx.post(f"{c.url}/counter/x{i}/add", json=1, timeout=30).status_code == 200
    first = httpx.get(f"{url}/invocations", params={"limit": 1, "status": "completed"}).json()
    assert first["next_cursor"] is not None
    r = httpx.get(
        f"{url}/invocations", params={"cursor": first["next_cursor"], "status": "running"}
    )
    assert r.status_code == 400 and "another filter" in r.text, r.text
    r = httpx.delete(f"{url}/invocations/{unknown}", params={"mode": "purge"})
    assert r.status_code == 404, r.text
    r = httpx.delete(f"{url}/invocations/{unknown}", params={"mode": "erase"})
    assert r.status_code == 400 and "cancel, kill or purge" in r.text, r.text
    r = httpx.patch(f"{url}/invocations/{unknown}/retry-now")
    assert r.status_code == 404, r.text


def test_listing_during_a_worker_kill_shows_each_invocation_once(
    cluster_factory: Callable[..., Cluster],
) -> None:
    """Invocations are listed while one of two workers is killed -9: no page shows an
    invocation twice or in two states, and every accepted invocation is there afterwards."""
    c = cluster_factory(app=APP, partitions=8)
    a = c.start_worker("a")
    b = c.start_worker("b")
    c.start_ingress()
    c.start_admin(port=free_port())
    wait_until(lambda: len(_leading(a) | _leading(b)) == 8, 90, "all 8 partitions led")
    accepted: list[str] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            r = httpx.post(f"{c.url}/counter/l{i % 16}/add/send", json=1, timeout=60)
            if r.status_code == 202:
                accepted.append(r.json()["invocationId"])
            i += 1

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        wait_until(lambda: len(accepted) >= 50, 60, "some invocations")
        seen_before = every(c, limit=50)
        assert len({r["id"] for r in seen_before}) == len(seen_before)
        a.kill9()
        for _ in range(3):
            rows = every(c, limit=50)
            assert len({r["id"] for r in rows}) == len(rows), "an invocation listed twice"
    finally:
        stop.set()
        loader.join(30)
    wait_until(
        lambda: {r["id"] for r in every(c, status="completed", limit=200)} >= set(accepted),
        90,
        "every accepted invocation listed completed",
    )


def _leading(worker: Any) -> set[int]:
    from tests.cluster import led_by

    return led_by(worker)


def perdure(c: Cluster, *args: str, token: bool = False) -> subprocess.CompletedProcess[str]:
    """Runs the CLI; the admin token of the environment only if ``token``."""
    env = {k: v for k, v in c.env.items() if token or k != "PERDURE_ADMIN_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "perdure", *args, "--admin-url", c.admin_url],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_the_cli_lists_describes_cancels_and_kills(cluster_factory: Callable[..., Cluster]) -> None:
    c = cluster_factory(app=APP, partitions=2)
    w = c.start_worker()
    c.start_ingress()
    c.start_admin(port=free_port())
    c.wait_leading(w)
    assert httpx.post(f"{c.url}/counter/cli/add", json=41, timeout=30).status_code == 200
    sleepers = [send(c, "tests/sleeper", 600_000) for _ in range(2)]
    wait_until(lambda: len(every(c, status="suspended")) == 2, 30, "the sleepers to suspend")

    ls = perdure(c, "invocations", "ls")
    assert ls.returncode == 0, ls.stderr
    header, *lines = ls.stdout.splitlines()
    assert header.split() == ["ID", "TARGET", "STATUS", "AGE", "ATTEMPTS", "ERROR"]
    assert len(lines) == 3 and all(s in ls.stdout for s in sleepers)
    assert "counter/cli/add" in ls.stdout and "tests/sleeper" in ls.stdout
    # Aligned: every row's status starts in the header's STATUS column.
    column = header.index("STATUS")
    assert {line[column:].split()[0] for line in lines} == {"completed", "suspended"}

    js = perdure(c, "invocations", "ls", "--status", "suspended", "--json")
    assert js.returncode == 0, js.stderr
    assert {r["id"] for r in json.loads(js.stdout)["invocations"]} == set(sleepers)

    d = perdure(c, "invocations", "describe", sleepers[0])
    assert d.returncode == 0 and "suspended" in d.stdout and "wakes in" in d.stdout, d.stdout
    assert perdure(c, "invocations", "cancel", sleepers[0]).returncode == 0
    assert perdure(c, "invocations", "kill", sleepers[1]).returncode == 0
    wait_until(
        lambda: {r["status"] for r in every(c, handler="sleeper")} == {"cancelled", "killed"},
        30,
        "the sleepers to end cancelled and killed",
    )

    # Purge: the completed add is forgotten (its output 404s); a running one is refused.
    [added] = every(c, service="counter")
    assert perdure(c, "invocations", "purge", added["id"]).returncode == 0
    out = httpx.get(f"{c.url}/restate/invocation/{added['id']}/output", timeout=30)
    assert out.status_code == 404, out.text
    # Retry now: an invocation backing off for 3 s starts its next attempt at once.
    backing = send(c, "tests/raises_every_time", "cli")
    wait_until(
        lambda: any(r["id"] == backing for r in every(c, status="backing-off")),
        30,
        "it to back off",
    )
    attempts = every(c, service="tests", handler="raises_every_time")[0]["attempts"]
    retried = perdure(c, "invocations", "retry-now", backing)
    assert retried.returncode == 0, retried.stderr
    wait_until(
        lambda: every(c, handler="raises_every_time")[0]["attempts"] > attempts,
        2.5,
        "the next attempt before its back-off (3 s) was over",
    )
    busy = perdure(c, "invocations", "purge", backing)
    assert busy.returncode == 1 and "409" in busy.stderr and "cancel or kill" in busy.stderr

    state = perdure(c, "state", "get", "counter", "cli")
    assert state.returncode == 0 and "value" in state.stdout and "41" in state.stdout, state.stdout
    services = perdure(c, "services", "ls")
    assert services.returncode == 0 and "counter" in services.stdout and "object" in services.stdout
    assert perdure(c, "subscriptions", "ls").returncode == 0

    metrics = httpx.get(f"{c.url}/metrics", timeout=30).text
    assert (
        'perdure_ingress_requests_total{code="200",handler="add",service="counter"} 1.0' in metrics
    )
    assert (
        'perdure_ingress_requests_total{code="202",handler="sleeper",service="tests"} 2.0'
        in metrics
    )
    assert 'perdure_ingress_request_seconds_count{handler="add",service="counter"} 1.0' in metrics
    assert "perdure_ingress_requests_in_flight 0.0" in metrics
    httpx.post(f"{c.url}/no/such/handler", json=1, timeout=30)
    metrics = httpx.get(f"{c.url}/metrics", timeout=30).text
    assert 'perdure_ingress_requests_total{code="404",handler="",service=""} 1.0' in metrics

    unknown = perdure(c, "invocations", "describe", str(InvocationId.new_unkeyed()))
    assert unknown.returncode == 1 and "404" in unknown.stderr, unknown.stderr
    down = subprocess.run(
        [
            sys.executable,
            "-m",
            "perdure",
            "invocations",
            "ls",
            "--admin-url",
            f"http://127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=c.env,
        check=False,
    )
    assert down.returncode == 2 and "does not answer" in down.stderr, down.stderr


def test_tokens_guard_the_admin_and_the_ingress(cluster_factory: Callable[..., Cluster]) -> None:
    env = {"PERDURE_ADMIN_TOKEN": "adm", "PERDURE_INGRESS_TOKEN": "ing"}
    c = cluster_factory(app=APP, partitions=2, env=env)
    w = c.start_worker()
    c.start_ingress()  # its /health needs no token
    c.start_admin(port=free_port())
    c.wait_leading(w)
    call = f"{c.url}/counter/t/add"
    assert httpx.post(call, json=1, timeout=30).status_code == 401
    r = httpx.post(call, json=1, headers={"authorization": "Bearer ing"}, timeout=30)
    assert r.status_code == 200, r.text
    assert httpx.get(f"{c.admin_url}/invocations", timeout=30).status_code == 401
    r = httpx.get(f"{c.admin_url}/invocations", headers={"authorization": "Bearer adm"})
    assert r.status_code == 200 and len(r.json()["invocations"]) == 1, r.text
    refused = perdure(c, "invocations", "ls")
    assert refused.returncode == 1 and "401" in refused.stderr, refused.stderr
    assert perdure(c, "invocations", "ls", "--token", "adm").returncode == 0
    assert perdure(c, "invocations", "ls", token=True).returncode == 0  # PERDURE_ADMIN_TOKEN
    big = httpx.post(
        f"{c.admin_url}/subscriptions",
        content=b"x" * (2 << 20),
        headers={"authorization": "Bearer adm"},
        timeout=30,
    )
    assert big.status_code == 413, big.text
