"""The benchmarks' processes: CPU and memory read from /proc (Linux), and their own broker."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_BROKER_SH = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "broker.sh"


def cpu_seconds(pid: int, descendants: bool = True) -> float:
    """User + system CPU time of a process and its descendants (a server's worker processes,
    hypercorn's say) so far."""
    total = 0.0
    for p in _tree(pid) if descendants else [pid]:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            if p == pid:
                raise
            continue  # a child that just ended
        total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def rss_bytes(pid: int, descendants: bool = True) -> int:
    """Resident memory of a process and its descendants now."""
    total = 0
    for p in _tree(pid) if descendants else [pid]:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            if p == pid:
                raise
    return total


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in task.read_text().split())
    return out


@dataclass
class Usage:
    """CPU share (cores) and peak RSS of named processes over a measured window."""

    pids: dict[str, int]
    start_cpu: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)
    alone: tuple[str, ...] = ("loadgen",)
    """Measured without their descendants: the load generator's process also started the
    broker and both systems, which must not count as its own."""

    def _cpu(self, name: str) -> float:
        return _safe(cpu_seconds, self.pids[name], 0.0, name not in self.alone)

    def begin(self) -> None:
        self.start_cpu = {n: self._cpu(n) for n in self.pids}
        self.peak_rss = {n: 0 for n in self.pids}

    def sample(self) -> None:
        for name, pid in self.pids.items():
            rss = _safe(rss_bytes, pid, 0, name not in self.alone)
            self.peak_rss[name] = max(self.peak_rss[name], rss)

    def end(self, seconds: float) -> dict[str, dict[str, float]]:
        self.sample()
        return {
            name: {
                "cpu_cores": round((self._cpu(name) - self.start_cpu[name]) / seconds, 3),
                "peak_rss_mb": round(self.peak_rss[name] / 2**20, 1),
            }
            for name, pid in self.pids.items()
        }


def _safe(fn, pid, default, descendants=True):  # type: ignore[no-untyped-def]
    try:
        return fn(pid, descendants)
    except OSError:
        return default


def stop_all(procs: list[subprocess.Popen[bytes]], timeout_s: float = 20) -> None:
    """Stops processes by PID: SIGTERM (after a SIGCONT, should a test have frozen one), then
    SIGKILL for those still there after ``timeout_s``."""
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalBroker:
    """A broker of the benchmark's own (``deploy/kafka/broker.sh``) in ``data_dir``."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = dict(env, KAFKA_PORT=str(free_port()), KAFKA_DATA_DIR=str(data_dir))
        self.pid: int | None = None

    def start(self) -> str:
        """Starts it; returns its bootstrap address."""
        out = subprocess.run(
            ["bash", str(_BROKER_SH), "start"],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        self.pid = int((self.data_dir / "broker.pid").read_text())
        return out.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        """Stops it (by the PID its script recorded)."""
        subprocess.run(
            ["bash", str(_BROKER_SH), "stop"], env=self.env, check=False, capture_output=True
        )
