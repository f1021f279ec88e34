"""CPU and memory of processes, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Usage:
    """CPU share (cores) and peak RSS of named processes over a measured window."""

    pids: dict[str, int]
    start_cpu: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)

    def begin(self) -> None:
        self.start_cpu = {n: _safe(cpu_seconds, p, 0.0) for n, p in self.pids.items()}
        self.peak_rss = {n: 0 for n in self.pids}

    def sample(self) -> None:
        for name, pid in self.pids.items():
            self.peak_rss[name] = max(self.peak_rss[name], _safe(rss_bytes, pid, 0))

    def end(self, seconds: float) -> dict[str, dict[str, float]]:
        self.sample()
        return {
            name: {
                "cpu_cores": round(
                    (_safe(cpu_seconds, pid, 0.0) - self.start_cpu[name]) / seconds, 3
                ),
                "peak_rss_mb": round(self.peak_rss[name] / 2**20, 1),
            }
            for name, pid in self.pids.items()
        }


def _safe(fn, pid, default):  # type: ignore[no-untyped-def]
    try:
        return fn(pid)
    except OSError:
        return default
