"""Recovery benchmark: how long a partition takes to serve again, and what history costs.

Usage::

    python -m bench.recovery                      # the figures of issue 11 (about 30 minutes)
    python -m bench.recovery --fills 2000,20000   # a quicker look

Three scenarios on one broker (started here unless ``PERDURE_BOOTSTRAP`` is set), each its own
cluster of 8 partitions, driven with three-step invocations at concurrency 64 after 10,000
virtual-object keys got state:

- ``short-retention``: results are kept ``--retention-s`` (a minute). After each fill the load
  stops until the retention passed and a backup followed the sweep; then the leader is killed
  (``kill -9``) and a worker with an empty state folder takes over. Reported: failure detection
  (kill to assignment: the group's session timeout), restore (assignment to leading every
  partition), bytes of the log on the broker's disk after trimming. The restore should not grow
  with the number of invocations ever made.
- ``busy``: as ``short-retention``, but the leader is killed the moment the load stops: no
  quiet spell, so the restore replays what the backup policy let accumulate under load.
- ``long-retention``: results are kept for a day, so the store holds every invocation. Reported
  per fill: worker RSS, store bytes and log bytes per invocation, and the restore of that
  (large) live state.

Then standby replicas: two workers with ``--standby-replicas 1`` share the partitions; one is
killed; reported is the time from reassignment to leading (and detection apart).

Results go to ``bench/results/recovery-<time>.{json,md}``. Absolute times vary between days on
shared machines; the ratios within one run are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.procs import LocalBroker, free_port, rss_bytes, stop_all

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def _log_time(line: str) -> float:
    stamp = line[:23]
    return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _du(paths: list[Path], pattern: str = "*") -> int:
    """Bytes in files matching ``pattern`` (Kafka's preallocated index files are left out by
    counting ``*.log`` segments only)."""
    total = 0
    for root in paths:
        for f in root.rglob(pattern):
            if f.is_file():
                total += f.stat().st_size
    return total


class Bench:
    """One broker, clusters on it, and every process started (stopped by PID at the end)."""

    def __init__(self, partitions: int) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="perdure-recovery-"))
        self.partitions = partitions
        self.env = dict(os.environ, PYTHONPATH=str(REPO))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.broker: LocalBroker | None = None
        self.kafka_data: Path | None = None
        bootstrap = os.environ.get("PERDURE_BOOTSTRAP")
        if not bootstrap:
            self.kafka_data = self.tmp / "kafka"
            self.broker = LocalBroker(self.kafka_data, self.env)
            bootstrap = self.broker.start()
        elif os.environ.get("KAFKA_DATA_DIR"):
            self.kafka_data = Path(os.environ["KAFKA_DATA_DIR"])
        self.bootstrap = bootstrap

    def start(self, args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = log.open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "perdure", *args],
            env={**self.env, **env},
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        stop_all(self.procs)
        if self.broker is not None:
            self.broker.stop()


class Cluster:
    """A cluster of workers and one ingress."""

    def __init__(self, bench: Bench, name: str, env: dict[str, str]) -> None:
        self.bench = bench
        self.name = f"{name}-{uuid.uuid4().hex[:6]}"
        self.dir = bench.tmp / self.name
        self.dir.mkdir()
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.metrics_ports: dict[str, int] = {}
        self.common = ["--bootstrap", bench.bootstrap, "--cluster", self.name]
        self.common += ["--partitions", str(bench.partitions)]
        bench.start(
            ["ingress", "--port", str(self.port), *self.common], self.dir / "ingress.log", env
        )
        self.completed = 0

    def worker(self, name: str, extra: list[str] | None = None) -> subprocess.Popen[bytes]:
        state = self.dir / f"state-{name}"
        args = ["worker", "bench.app:app", "--state-dir", str(state), *self.common, *(extra or [])]
        port = self.metrics_ports[name] = free_port()
        proc = self.bench.start(
            args, self.dir / f"{name}.log", {**self.env, "PERDURE_METRICS_PORT": str(port)}
        )
        self.workers[name] = proc
        return proc

    def metric(self, name: str, sample: str) -> float:
        """One sample (``metric{labels}`` as exposed) of worker ``name``'s /metrics."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_ports[name]}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(sample + " "):
                return float(line.split()[1])
        raise KeyError(f"{sample} not in the metrics of {name}")

    def log(self, name: str) -> str:
        return (self.dir / f"{name}.log").read_text(errors="replace")

    def leading(self, name: str) -> dict[int, float]:
        """Partition -> the time ``name`` logged leading it (the last time)."""
        out: dict[int, float] = {}
        for line in self.log(name).splitlines():
            m = re.search(r"partition (\d+): leading", line)
            if m:
                out[int(m.group(1))] = _log_time(line)
        return out

    def assigned(self, name: str) -> dict[int, float]:
        out: dict[int, float] = {}
        for line in self.log(name).splitlines():
            m = re.search(r"assigned partitions \[([\d, ]*)\]", line)
            if m and m.group(1):
                for p in m.group(1).split(","):
                    out[int(p)] = _log_time(line)
        return out

    def wait_leading(self, name: str, count: int, after: float, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while sum(1 for t in self.leading(name).values() if t >= after) < count:
            if self.workers[name].poll() is not None:
                raise SystemExit(f"{name} exited:\n{self.log(name)[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"{name} did not lead {count} partitions:\n{self.log(name)[-3000:]}"
                )
            time.sleep(0.05)

    def wait_serving(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.post(self.url + "/bench/noop", json=1, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the cluster does not serve")
            time.sleep(0.1)

    def drive(self, path: str, count: int, body: Any, concurrency: int = 64) -> float:
        """Sends ``count`` calls to ``path`` (``{i}`` is the call's number); returns calls/s."""

        async def run() -> float:
            todo = iter(range(count))
            errors = 0

            async def client(session: aiohttp.ClientSession) -> None:
                nonlocal errors
                for i in todo:
                    for _ in range(20):
                        try:
                            async with session.post(self.url + path.format(i=i), json=body) as r:
                                await r.read()
                                if r.status == 200:
                                    break
                        except aiohttp.ClientError:
                            pass
                        errors += 1
                        await asyncio.sleep(0.5)

            start = time.monotonic()
            timeout = aiohttp.ClientTimeout(total=120)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                await asyncio.gather(*(client(session) for _ in range(concurrency)))
            return count / (time.monotonic() - start)

        return asyncio.run(run())

    def log_bytes(self) -> int | None:
        data = self.bench.kafka_data
        if data is None:
            return None
        return _du([p for p in (data / "data").glob(f"{self.name}.log-*")], "*.log")

    def backed_up(self, name: str) -> tuple[int, int]:
        """Keys and bytes of the newest backup of every partition ``name`` wrote."""
        last: dict[int, tuple[int, int]] = {}
        pattern = r"partition (\d+): backup \w+ of offset \d+ written: (\d+) keys, (\d+) bytes"
        for p, k, b in re.findall(pattern, self.log(name)):
            last[int(p)] = (int(k), int(b))
        return sum(k for k, _ in last.values()), sum(b for _, b in last.values())

    def failover(self, old: str, new: str, extra: list[str] | None = None) -> dict[str, float]:
        """kill -9 ``old``; start ``new`` with an empty state folder; time the takeover."""
        killed = time.time()
        os.kill(self.workers[old].pid, signal.SIGKILL)
        self.workers[old].wait(10)
        self.worker(new, extra)
        self.wait_leading(new, self.bench.partitions, killed)
        return self._timing(new, killed)

    def _timing(
        self, new: str, killed: float, partitions: set[int] | None = None
    ) -> dict[str, float]:
        assigned = {p: t for p, t in self.assigned(new).items() if t >= killed}
        leading = {p: t for p, t in self.leading(new).items() if t >= killed}
        if partitions is not None:
            assigned = {p: t for p, t in assigned.items() if p in partitions}
            leading = {p: t for p, t in leading.items() if p in partitions}
        first = min(assigned.values())
        self.wait_serving()
        served = time.time()
        return {
            "detection_s": round(first - killed, 2),
            "restore_s": round(max(leading.values()) - first, 2),
            "restore_max_partition_s": round(max(leading[p] - assigned[p] for p in leading), 2),
            "kill_to_serving_s": round(served - killed, 2),
        }


def scenario(
    bench: Bench,
    name: str,
    fills: list[int],
    objects: int,
    retention_s: float,
    wait_expiry: bool,
    extra_env: dict[str, str],
) -> dict[str, Any]:
    env = {
        **extra_env,
        "PERDURE_RETENTION_S": str(retention_s),
        "PERDURE_PURGE_INTERVAL_S": "5",
        "PERDURE_SESSION_TIMEOUT_MS": "6000",
        "PERDURE_LOG_LEVEL": "INFO",
    }
    c = Cluster(bench, name, env)
    current = "w0"
    c.worker(current)
    c.wait_leading(current, bench.partitions, 0)
    c.wait_serving()
    rows: list[dict[str, Any]] = []
    rate = c.drive("/counter/key-{i}/add", objects, 1)
    print(f"[{name}] {objects} object keys with state ({rate:.0f}/s)", flush=True)
    done = 0
    for n, target in enumerate(fills, 1):
        rate = c.drive("/bench/three_steps", target - done, 1)
        done = target
        row: dict[str, Any] = {"invocations": target, "fill_calls_per_s": round(rate)}
        pid = c.workers[current].pid
        row["worker_rss_mb"] = round(rss_bytes(pid) / 2**20, 1)
        # What of it is RocksDB's (bounded by the shared cache) and what is the rest.
        cache = c.metric(current, 'perdure_store_memory_bytes{kind="block_cache"}')
        row["rocksdb_cache_mb"] = round(cache / 2**20, 1)
        # The live state, from the newest backup of each partition: RocksDB's files lag behind
        # (no WAL, memtables unflushed), the backups are exact.
        keys_, bytes_ = c.backed_up(current)
        row["store_keys"] = keys_
        row["store_bytes"] = bytes_
        if wait_expiry:
            # Let the results expire, the sweep run and a backup follow it.
            time.sleep(retention_s + 5 + 10 + 5)
        row["log_bytes_on_disk"] = c.log_bytes()
        row["log_bytes_per_invocation"] = round((row["log_bytes_on_disk"] or 0) / target)
        row["store_bytes_per_invocation"] = round(bytes_ / target)
        new = f"w{n}"
        row.update(c.failover(current, new))
        current = new
        row["log_bytes_after_trim"] = c.log_bytes()
        print(f"[{name}] {row}", flush=True)
        rows.append(row)
    return {
        "cluster": c.name,
        "retention_s": retention_s,
        "rows": rows,
        "env": env,
        "_cluster": c,
        "_current": current,
    }


def standby(bench: Bench, objects: int) -> dict[str, Any]:
    env = {"PERDURE_SESSION_TIMEOUT_MS": "6000", "PERDURE_STANDBY_REPLICAS": "1"}
    c = Cluster(bench, "standby", env)
    c.worker("a")
    c.wait_leading("a", bench.partitions, 0)
    c.wait_serving()
    c.drive("/counter/key-{i}/add", objects, 1)
    c.drive("/bench/three_steps", 5000, 1)
    c.worker("b")
    time.sleep(20)  # the group rebalances; each worker keeps a warm copy of the other's
    c.drive("/bench/three_steps", 5000, 1)
    time.sleep(3)
    led_by_a = {p for p, t in c.leading("a").items()} - set(c.leading("b"))
    killed = time.time()
    os.kill(c.workers["a"].pid, signal.SIGKILL)
    c.workers["a"].wait(10)
    c.wait_leading("b", len(led_by_a), killed)
    timing = c._timing("b", killed, led_by_a)
    warm = len(re.findall(r"standby", c.log("b")))
    print(f"[standby] partitions failed over {sorted(led_by_a)}: {timing}", flush=True)
    return {
        "partitions_failed_over": sorted(led_by_a),
        **timing,
        "standby_log_lines": warm,
        "env": env,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Recovery benchmark {result['when']}", "", result["machine"], ""]
    for sc in result["scenarios"]:
        lines += [f"## {sc['name']} (retention {sc['retention_s']} s)", ""]
        cols = list(sc["rows"][0])
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for row in sc["rows"]:
            lines.append("| " + " | ".join(str(row[k]) for k in cols) + " |")
        lines.append("")
    if result.get("standby"):
        lines += ["## standby replicas", "", "```", json.dumps(result["standby"], indent=1), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fills", default="20000,200000")
    parser.add_argument("--objects", type=int, default=10000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--retention-s", type=float, default=60)
    parser.add_argument("--scenarios", default="short-retention,long-retention,standby")
    args = parser.parse_args(argv)
    fills = [int(x) for x in args.fills.split(",")]
    wanted = args.scenarios.split(",")
    bench = Bench(args.partitions)
    result: dict[str, Any] = {
        "when": time.strftime("%Y%m%d-%H%M%S"),
        "machine": f"{os.cpu_count()} cores, broker on the same machine",
        "fills": fills,
        "scenarios": [],
    }
    try:
        for name, retention, wait, env in (
            # 1 MiB segments: trimmed records leave the disk soon, the log's size shows it.
            ("short-retention", args.retention_s, True, {"PERDURE_SEGMENT_BYTES": "1048576"}),
            # The log is not trimmed: its size on disk is what an invocation appends.
            ("long-retention", 86400.0, False, {"PERDURE_TRIM_MARGIN_RECORDS": "-1"}),
            # Handed over the moment the load stops: no quiet spell to back up in, so the
            # restore replays whatever the backup policy let accumulate under load.
            ("busy", args.retention_s, False, {"PERDURE_SEGMENT_BYTES": "1048576"}),
        ):
            if name in wanted:
                sc = scenario(bench, name, fills, args.objects, retention, wait, env)
                sc.pop("_cluster")
                sc.pop("_current")
                result["scenarios"].append({"name": name, **sc})
        if "standby" in wanted:
            result["standby"] = standby(bench, args.objects)
    finally:
        bench.stop()
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"recovery-{result['when']}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    print(f"written to {stem}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
