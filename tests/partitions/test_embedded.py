"""``perdure dev --embedded``: one process, no broker, its log in a folder; killed with -9 and
started again, nothing acknowledged is lost or done twice (a step that was journaled is not run
again), and state and timers carry over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster import free_port, wait_until

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parents[2]


class Embedded:
    """``perdure dev --embedded APP`` as a process of its own; stopped by its PID."""

    def __init__(self, tmp: Path, app: str) -> None:
        self.tmp = tmp
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ledger = tmp / "ledger.txt"
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, **env: str) -> float:
        """Starts it; returns the seconds until it answered its health check."""
        began = time.monotonic()
        self.starts += 1
        out = (self.tmp / f"embedded-{self.starts}.log").open("wb")
        command = [sys.executable, "-m", "perdure", "dev", "--embedded", self.app]
        command += ["--port", str(self.port), "--state-dir", str(self.tmp / "log")]
        self.popen = subprocess.Popen(
            command,
            cwd=ROOT,
            env={
                **os.environ,
                "PERDURE_EXAMPLE_LEDGER": str(self.ledger),
                "PERDURE_SUSPEND_AFTER_S": "0.3",
                **env,
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()  # the child has its own copy
        wait_until(self._healthy, 30, "the embedded ingress")
        return time.monotonic() - began

    def _healthy(self) -> bool:
        assert self.popen is not None
        if self.popen.poll() is not None:
            raise AssertionError(f"it exited: {self.log()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill9(self) -> None:
        assert self.popen is not None
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.kill9()

    def log(self) -> str:
        return "".join(p.read_text() for p in sorted(self.tmp.glob("embedded-*.log")))

    def lines(self) -> list[list[str]]:
        text = self.ledger.read_text() if self.ledger.exists() else ""
        return [line.split("\t") for line in text.splitlines() if line]


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    made = Embedded(tmp_path, "perdure.examples.everything:app")
    yield made
    made.stop()


ORDER = {"orderId": "o-1", "userId": "u-1", "amount": 42}


def test_it_serves_the_http_contract_with_no_broker(embedded: Embedded) -> None:
    seconds = embedded.start()
    print(f"started in {seconds:.2f}s")
    with httpx.Client(base_url=embedded.url, timeout=30) as h:
        assert h.post("/payments/process_payment", json=ORDER).json()["status"] == "completed"
        assert h.post("/cart/ann/add_item", json={"sku": "tea", "price": 3}).json() == {"items": 1}
        assert h.post("/cart/ann/get_items").json() == [{"sku": "tea", "price": 3}]
        assert h.post("/nope/x").status_code == 404
        assert h.post("/payments/process_payment", content=b"{not json").status_code == 400
        bad = h.post("/payments/process_payment", json={**ORDER, "amount": 0})
        assert bad.status_code == 400 and "amount must be positive" in bad.text
        sent = h.post("/payments/process_payment/send", json={**ORDER, "userId": "u-9"})
        assert sent.status_code == 202
        out = h.get(f"/restate/invocation/{sent.json()['invocationId']}/attach")
        assert out.json()["chargeId"] == "ch-u-9-42"


def test_killed_mid_step_it_resumes_from_its_log_and_keeps_state_and_timers(
    embedded: Embedded,
) -> None:
    embedded.start(PERDURE_EXAMPLE_SLOW="charge:5")
    with httpx.Client(base_url=embedded.url, timeout=30) as h:
        h.post("/cart/ann/add_item", json={"sku": "tea", "price": 3}).raise_for_status()
        # Waiting across the restart: signup on its promise; approvals on its awakeable, with
        # an hour's timeout armed and a reminder sent to run a minute later (two timers).
        h.post("/signup/ann/run/send", json={"email": "ann@example.com"}).raise_for_status()
        asking = h.post("/approvals/request/send", json={"item": "desk"}).json()["invocationId"]
        paying = h.post("/payments/process_payment/send", json=ORDER).json()["invocationId"]
    wait_until(lambda: ["slow", "charge"] in embedded.lines(), 20, "step 2 to begin")
    wait_until(lambda: any(x[:2] == ["approval", "desk"] for x in embedded.lines()), 20, "ask")
    wait_until(lambda: any(x[0] == "mail" for x in embedded.lines()), 20, "the mail")
    embedded.kill9()
    assert ["charge", "u-1", "42"] not in embedded.lines()

    # It listens at once: the interrupted step runs again (5 s) while calls wait for it.
    seconds = embedded.start(PERDURE_EXAMPLE_SLOW="charge:5")
    assert seconds < 4, f"the restart served only after {seconds:.1f}s"
    assert "invocations go on" in embedded.log()
    awakeable = next(x[2] for x in embedded.lines() if x[:2] == ["approval", "desk"])
    code = next(x[2] for x in embedded.lines() if x[0] == "mail")
    with httpx.Client(base_url=embedded.url, timeout=60) as h:
        out = h.get(f"/restate/invocation/{paying}/attach")
        assert out.status_code == 200 and out.json()["status"] == "completed", out.text
        assert h.post("/cart/ann/get_items").json() == [{"sku": "tea", "price": 3}]
        # The promise and the awakeable were kept, and the timers with them.
        assert h.post("/signup/ann/status").json() == "waiting for verification"
        assert h.post("/signup/ann/verify", json=code).status_code == 200
        verified = h.get("/restate/workflow/signup/ann/attach").json()
        assert verified["verified"] is True, verified
        r = h.post(f"/restate/awakeables/{awakeable}/resolve", json="yes")
        assert r.status_code == 202, r.text
        approved = h.get(f"/restate/invocation/{asking}/attach").json()
        assert approved["approved"] is True and approved["answer"] == "yes"
    assert embedded.lines().count(["reserve", "o-1"]) == 1, "journaled: not run again"
    assert embedded.lines().count(["charge", "u-1", "42"]) == 1
    assert embedded.lines().count(["mail", "ann@example.com", code]) == 1


def test_a_waiting_invocation_survives_a_restart(embedded: Embedded) -> None:
    embedded.start()
    with httpx.Client(base_url=embedded.url, timeout=30) as h:
        sent = h.post("/approvals/request/send", json={"item": "desk"}).json()["invocationId"]
    wait_until(lambda: any(x[:2] == ["approval", "desk"] for x in embedded.lines()), 20, "ask")
    embedded.kill9()
    # It listens at once: the interrupted step runs again (5 s) while calls wait for it.
    seconds = embedded.start(PERDURE_EXAMPLE_SLOW="charge:5")
    assert seconds < 4, f"the restart served only after {seconds:.1f}s"
    assert "invocations go on" in embedded.log()
    awakeable = next(x[2] for x in embedded.lines() if x[:2] == ["approval", "desk"])
    with httpx.Client(base_url=embedded.url, timeout=30) as h:
        r = h.post(f"/restate/awakeables/{awakeable}/resolve", json="yes")
        assert r.status_code == 202, r.text
        out = h.get(f"/restate/invocation/{sent}/attach").json()
    assert out["approved"] is True and out["answer"] == "yes"
