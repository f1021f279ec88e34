"""WorkerPool: ``perdure worker`` on every core, as one command.

One Python process runs its handlers, its processor thread and its Kafka clients under one GIL,
so it uses one core however many the machine has. A pool runs N worker processes (members),
each its own member of the cluster's consumer group, so the group spreads the partitions over
them and each leads its share. From outside it is still one worker:

- **One command, one PID to stop.** SIGTERM or Ctrl-C to the pool is passed to every member,
  which drains and hands its partitions over as a single worker does; the pool exits when they
  have. A member that exits on its own is started again (with a back-off). A pool killed with
  ``kill -9`` takes its members with it (Linux's parent-death signal, and each member also
  watches its parent), so a killed pool is a killed worker, never orphans that go on leading.
- **One log.** Members write to the pool's stdout and stderr; their worker names (and so their
  leader ids) end in ``-m<i>``.
- **One metrics endpoint.** The pool serves ``/metrics`` on the worker's metrics port: every
  member's metrics, each sample labelled ``member="<i>"``; ``/health/ready`` is ready when every
  member is (perdure/pool/metrics.py). Members serve on ports of their own on
  127.0.0.1.
- **A store folder per member** (``<state dir>/member-<i>``): a partition that moves from one
  member to another is restored or replayed as between two workers, and two members never
  open one RocksDB folder (a member stopped with SIGSTOP still holds its lock).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from perdure.pool.metrics import PooledMetrics

log = logging.getLogger("perdure.pool")

_PR_SET_PDEATHSIG = 1
_STOP_GRACE_S = 40.0
"""How long members get to stop after the drain timeout, before they are killed."""
_MAX_BACKOFF_S = 30.0


def processes_for(wanted: int) -> int:
    """How many members a pool of ``wanted`` processes runs: 0 means one per usable core."""
    if wanted > 0:
        return wanted
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def follow_parent(parent_pid: int) -> None:
    """In a member: die with the pool. Asks Linux for SIGKILL when the parent dies, and watches
    the parent's PID as well (other systems, and a parent that died before the request)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.5)

    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, name="pool-parent", daemon=True).start()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Member:
    index: int
    metrics_port: int
    proc: subprocess.Popen[bytes] | None = None
    failures: int = 0
    restart_at: float = 0.0


class WorkerPool:
    """Runs ``count`` members of ``argv`` (a ``perdure worker`` command line) until stopped.

    Args:
        argv: the member's command line, without the pool's own flags.
        count: members to run.
        state_dir: the pool's store folder; each member gets ``member-<i>`` in it.
        worker_name: the pool's worker name; member ``i`` is ``<name>-m<i>``.
        metrics_port: where the pool serves every member's metrics (0: nowhere).
        stop_timeout_s: how long members get to drain and leave after SIGTERM.
    """

    def __init__(
        self,
        argv: list[str],
        count: int,
        state_dir: Path,
        worker_name: str,
        metrics_port: int,
        stop_timeout_s: float,
    ) -> None:
        self.argv = argv
        self.state_dir = state_dir
        self.worker_name = worker_name
        self.metrics_port = metrics_port
        self.stop_timeout_s = stop_timeout_s + _STOP_GRACE_S
        self.members = [_Member(i, _free_port() if metrics_port else 0) for i in range(count)]
        self._stop = threading.Event()

    def run(self) -> int:
        """Starts the members, keeps them running until SIGTERM or SIGINT; the exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda _s, _f: self._stop.set())
        if self.metrics_port:
            PooledMetrics({m.index: m.metrics_port for m in self.members}).serve(self.metrics_port)
        log.info(
            "worker pool %s: %d member processes, stores in %s/member-<i>",
            self.worker_name,
            len(self.members),
            self.state_dir,
        )
        try:
            for member in self.members:
                self._start(member)
            while not self._stop.wait(0.2):
                for member in self.members:
                    self._check(member)
        finally:
            self._stop_all()
        return 0

    def _start(self, member: _Member) -> None:
        env = dict(
            os.environ,
            PERDURE_STATE_DIR=str(self.state_dir / f"member-{member.index}"),
            PERDURE_WORKER_NAME=f"{self.worker_name}-m{member.index}",
            PERDURE_METRICS_PORT=str(member.metrics_port),
            PERDURE_WORKER_PROCESSES="1",
        )
        cmd = [*self.argv, "--pool-parent", str(os.getpid())]
        member.proc = subprocess.Popen(cmd, env=env)
        log.info("worker pool: member %d started (pid %d)", member.index, member.proc.pid)

    def _check(self, member: _Member) -> None:
        proc = member.proc
        now = time.monotonic()
        if proc is None:
            if now >= member.restart_at:
                self._start(member)
            return
        code = proc.poll()
        if code is None:
            if member.failures and now - member.restart_at > 60:
                member.failures = 0  # up for a minute: the back-off starts over
            return
        member.proc = None
        member.failures += 1
        delay = min(_MAX_BACKOFF_S, 0.5 * 2 ** (member.failures - 1))
        member.restart_at = now + delay
        log.error(
            "worker pool: member %d (pid %d) exited with code %s; starting it again in %.1fs",
            member.index,
            proc.pid,
            code,
            delay,
        )

    def _stop_all(self) -> None:
        running = [m.proc for m in self.members if m.proc is not None and m.proc.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pool: member pid %d did not stop; killing it", proc.pid)
                proc.kill()
                proc.wait(5)
        log.info("worker pool %s stopped", self.worker_name)


_POOL_FLAGS = ("--processes", "--metrics-port", "--state-dir")
"""The pool's flags that a member gets otherwise (its own value, in its environment)."""


def member_argv(argv: list[str]) -> list[str]:
    """A member's command line from the pool's: this Python, ``-m perdure``, the pool's
    arguments without those the pool sets per member."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _POOL_FLAGS:
            skip = True
            continue
        if arg.startswith(tuple(f"{flag}=" for flag in _POOL_FLAGS)):
            continue
        out.append(arg)
    return [sys.executable, "-m", "perdure", *out]
