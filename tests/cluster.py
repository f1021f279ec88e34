"""Real Perdure processes for integration and fault tests.

A :class:`Cluster` starts workers and ingress replicas as separate OS processes (``python -m
perdure ...``) against the test broker, each with its own log file, and stops every process it
started by PID when the test ends, on failure too. Tests kill them with real signals.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond: Callable[[], object], timeout: float, what: str, every: float = 0.1) -> None:
    """Polls ``cond`` until it is truthy; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


class Proc:
    """A started Perdure process and its log."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        # A restarted process appends to the same file: its own lines start here.
        self.log_start = log_path.stat().st_size if log_path.exists() else 0
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "perdure", *args],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        """What this process (not an earlier one with the same name) has logged."""
        return self.log_path.read_bytes()[self.log_start :].decode(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float, start: int = 0) -> re.Match[str]:
        """Waits until the log (from character ``start``) matches ``pattern``."""
        found: list[re.Match[str]] = []

        def seen() -> bool:
            m = re.search(pattern, self.log()[start:])
            if m:
                found.append(m)
            return bool(m)

        wait_until(seen, timeout, f"{self.name} to log {pattern!r}")
        return found[0]

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def kill9(self) -> None:
        """``kill -9`` and reap."""
        self.signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (after SIGCONT, in case it was stopped), then SIGKILL after ``timeout``."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
        self._log.close()


class Cluster:
    """One Perdure cluster (its own topic prefix) on the shared test broker."""

    def __init__(
        self,
        bootstrap: str,
        name: str,
        workdir: Path,
        app: str = "perdure.examples.payments:app",
        partitions: int = 4,
        env: dict[str, str] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.name = name
        self.workdir = workdir
        self.app = app
        self.partitions = partitions
        self.ledger = workdir / "ledger.txt"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "PERDURE_EXAMPLE_LEDGER": str(self.ledger),
            "PERDURE_EXAMPLE_MAILBOX": str(workdir / "mailbox"),
            "PERDURE_SESSION_TIMEOUT_MS": "3000",
            "PERDURE_REATTACH_INTERVAL_S": "1.5",
            # Nothing here balances load by readiness: a stopping ingress need not linger.
            "PERDURE_SHUTDOWN_DELAY_S": "0",
            # A stopping worker lets steps finish; a test's teardown need not wait 10 s for one.
            "PERDURE_DRAIN_TIMEOUT_S": "2",
            **(env or {}),
        }
        self.procs: list[Proc] = []
        self.ingress_port: int | None = None
        self.admin_port: int | None = None

    def _common(self) -> list[str]:
        return [
            "--bootstrap",
            self.bootstrap,
            "--cluster",
            self.name,
            "--partitions",
            str(self.partitions),
        ]

    def state_dir(self, worker: str) -> Path:
        return self.workdir / f"state-{worker}"

    def start_worker(self, name: str = "w1", env: dict[str, str] | None = None) -> Proc:
        args = ["worker", self.app, "--state-dir", str(self.state_dir(name)), *self._common()]
        proc = Proc(name, args, {**self.env, **(env or {})}, self.workdir / f"{name}.log")
        self.procs.append(proc)
        return proc

    def start_ingress(self, name: str = "ingress", port: int | None = None) -> Proc:
        port = port or self.ingress_port or free_port()
        self.ingress_port = port
        args = ["ingress", "--port", str(port), *self._common()]
        proc = Proc(name, args, self.env, self.workdir / f"{name}.log")
        self.procs.append(proc)
        wait_until(self._healthy, 60, f"{name} to answer /health")
        return proc

    def start_admin(
        self, name: str = "admin", port: int | None = None, env: dict[str, str] | None = None
    ) -> Proc:
        """Starts ``perdure admin`` (subscriptions and forwarding run in it) and waits for its
        /health."""
        port = port or self.admin_port or free_port()
        self.admin_port = port
        args = ["admin", "--port", str(port), *self._common()]
        proc = Proc(name, args, {**self.env, **(env or {})}, self.workdir / f"{name}.log")
        self.procs.append(proc)

        def healthy() -> bool:
            if not proc.alive():
                raise AssertionError(f"{name} exited:\n{proc.log()[-3000:]}")
            try:
                return httpx.get(f"{self.admin_url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 60, f"{name} to answer /health")
        return proc

    @property
    def admin_url(self) -> str:
        assert self.admin_port is not None
        return f"http://127.0.0.1:{self.admin_port}"

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def url(self) -> str:
        assert self.ingress_port is not None
        return f"http://127.0.0.1:{self.ingress_port}"

    def wait_leading(
        self, worker: Proc, partitions: int | None = None, timeout: float = 60
    ) -> None:
        """Waits until ``worker`` has logged leadership of ``partitions`` distinct partitions."""
        want = self.partitions if partitions is None else partitions

        def leading() -> bool:
            if not worker.alive():
                raise AssertionError(f"{worker.name} exited:\n{worker.log()[-3000:]}")
            return len(set(re.findall(r"partition (\d+): leading", worker.log()))) >= want

        wait_until(leading, timeout, f"{worker.name} to lead {want} partitions")

    def ledger_lines(self) -> list[list[str]]:
        if not self.ledger.exists():
            return []
        return [line.split("\t") for line in self.ledger.read_text().splitlines() if line]

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def serving(make: Callable[..., Cluster], **kwargs: object) -> Cluster:
    """A cluster from ``make`` (the ``cluster_factory`` fixture) with one worker that leads
    every partition and an ingress that answers."""
    c = make(**kwargs)
    worker = c.start_worker()
    c.start_ingress()
    c.wait_leading(worker)
    return c


def led_by(worker: Proc) -> set[int]:
    """Partitions the worker leads now, from its log (leading minus released)."""
    led: set[int] = set()
    for m in re.finditer(
        r"partition (\d+)(: leading| (revoked|lost|worker stopping)|: .* stepping down)",
        worker.log(),
    ):
        p = int(m.group(1))
        if m.group(2) == ": leading":
            led.add(p)
        else:
            led.discard(p)
    return led
