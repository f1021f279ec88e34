"""Perdure's benchmark harness: workloads over HTTP against one worker and one ingress, and
against Restate in the same run.

    python -m bench.run                     # full run (about 30 minutes), results in bench/results/
    python -m bench.run --duration 2 --warmup 1 --reps 1 --concurrency 4   # a quick look
    python -m bench.run --baseline none     # Perdure alone

Starts a broker (unless PERDURE_BOOTSTRAP names one), one worker and the ingress with
``bench.app``, and (``--baseline restate``, the default) a Restate server with the same workloads
on Restate's Python SDK (``bench/restate/``, installed on first use). Measures the broker's floor,
then drives each workload at each concurrency for a fixed duration after a warm-up, several
times, alternating the systems (Perdure, Restate, Restate, Perdure, ...) so that a machine's
drift hits both, and reports medians: calls/s, p50/p90/p99 latency, errors, the CPU share (cores)
and peak RSS of each process, the load generator included (it shares the same cores), and
CPU-seconds per 1,000 completed calls per process and in total (the load generator left out).
Writes ``<out>/bench-<timestamp>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from bench import floor, subscriptions
from bench.loadgen import Client, ConnectionClosed
from bench.procs import LocalBroker, Usage, free_port, stop_all
from bench.restate.stack import RestateStack
from bench.step_latency import measure_step

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Workload:
    name: str
    path: Callable[[int], str]
    body: Callable[[int], Any]
    concurrency: tuple[int, ...] | None = None  # None: the run's default levels


SUBSCRIPTION_COUNTER = "subscription_counter"
"""Not an HTTP workload: a backlog drained through a subscription (bench/subscriptions.py)."""
WORKLOADS = [
    Workload("noop", lambda i: "/bench/noop", lambda i: {"i": i}),
    Workload("three_steps", lambda i: "/bench/three_steps", lambda i: i),
    Workload("counter_1000", lambda i: f"/counter/k{i % 1000}/add", lambda i: 1),
    Workload("counter_hot", lambda i: "/counter/hot/add", lambda i: 1),
    # A JSON body: without one the load generator sends an empty octet-stream, which Restate
    # refuses for a JSON handler.
    Workload("sleepy", lambda i: "/bench/sleepy", lambda i: i, (64,)),
]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def drive(
    url: str, w: Workload, concurrency: int, warmup: float, duration: float, usage: Usage
) -> dict[str, Any]:
    """Runs ``concurrency`` closed-loop clients; measures the window after the warm-up."""
    latencies: list[float] = []
    errors = 0
    counter = 0
    begin = time.monotonic()
    measure_from = begin + warmup
    end = measure_from + duration
    measuring = False

    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80

    async def client() -> None:
        nonlocal errors, counter
        http = Client(host, port)
        try:
            while True:
                now = time.monotonic()
                if now >= end:
                    return
                counter += 1
                i = counter
                start = time.perf_counter()
                try:
                    ok = await http.post(w.path(i), w.body(i)) == 200
                except (OSError, ConnectionClosed, TimeoutError):
                    ok = False
                if time.monotonic() >= measure_from:
                    if ok:
                        latencies.append((time.perf_counter() - start) * 1000)
                    else:
                        errors += 1
        finally:
            http.close()

    async def sampler() -> None:
        nonlocal measuring
        await asyncio.sleep(max(measure_from - time.monotonic(), 0))
        usage.begin()
        measuring = True
        while time.monotonic() < end:
            usage.sample()
            await asyncio.sleep(0.25)

    await asyncio.gather(sampler(), *(client() for _ in range(concurrency)))
    return {
        "calls_per_s": round(len(latencies) / duration, 1),
        "p50_ms": round(pct(latencies, 50), 2),
        "p90_ms": round(pct(latencies, 90), 2),
        "p99_ms": round(pct(latencies, 99), 2),
        "errors": errors,
        "processes": usage.end(duration),
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("calls_per_s", "p50_ms", "p90_ms", "p99_ms", "errors"):
        out[key] = round(statistics.median(r[key] for r in runs), 2)
    out["processes"] = {
        name: {
            metric: round(statistics.median(r["processes"][name][metric] for r in runs), 2)
            for metric in runs[0]["processes"][name]
        }
        for name in runs[0]["processes"]
    }
    out["cpu_s_per_1k"] = cpu_per_1k(out)
    return out


def cpu_per_1k(median: dict[str, Any]) -> dict[str, float]:
    """CPU-seconds per 1,000 completed calls, per process and in total (load generator apart:
    it is the same for both systems and not part of either)."""
    calls = median["calls_per_s"]
    if not calls:
        return {}
    out = {
        name: round(p["cpu_cores"] / calls * 1000, 3)
        for name, p in median["processes"].items()
        if name != "loadgen"
    }
    out["total"] = round(sum(out.values()), 3)
    return out


class Stack:
    """The broker (unless given), one worker and one ingress, as plain processes."""

    def __init__(self, partitions: int, tree: Path = REPO) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="perdure-bench-"))
        self.tree = tree
        self.env = dict(os.environ, PYTHONPATH=str(tree))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.broker: LocalBroker | None = None
        self.broker_pid: int | None = None
        self.partitions = partitions

    def start(self) -> str:
        bootstrap = os.environ.get("PERDURE_BOOTSTRAP")
        if not bootstrap:
            self.broker = LocalBroker(self.tmp / "kafka", self.env)
            bootstrap = self.broker.start()
            self.broker_pid = self.broker.pid
        self.bootstrap = bootstrap
        cluster = f"bench-{uuid.uuid4().hex[:6]}"
        port = free_port()
        common = ["--bootstrap", bootstrap, "--cluster", cluster]
        common += ["--partitions", str(self.partitions), "--log-level", "WARNING"]
        self.common = common
        me = [sys.executable, "-m", "perdure"]
        state = str(self.tmp / "state")
        self.worker = subprocess.Popen(
            [*me, "worker", "bench.app:app", "--state-dir", state, *common],
            env=self.env,
            cwd=self.tree,
        )
        self.ingress = subprocess.Popen(
            [*me, "ingress", "--port", str(port), *common], env=self.env, cwd=self.tree
        )
        self.procs = [self.worker, self.ingress]
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                import httpx

                if httpx.post(self.url + "/bench/noop", json=1, timeout=5).status_code == 200:
                    return bootstrap
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the bench cluster did not come up")
            time.sleep(0.2)

    def pids(self) -> dict[str, int]:
        pids = {"worker": self.worker.pid, "ingress": self.ingress.pid, "loadgen": os.getpid()}
        if self.broker_pid is not None:
            pids["broker"] = self.broker_pid
        return pids

    def stop(self) -> None:
        stop_all(self.procs)
        if self.broker is not None:
            self.broker.stop()


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def markdown(result: dict[str, Any]) -> str:
    f = result["floor"]
    lines = [
        f"# Perdure benchmark, {result['when']}",
        "",
        f"Machine: {result['machine']}. Durations: {result['settings']}.",
        "",
        f"Floor (same broker, same run): one acks=all produce + read-back p50 "
        f"{f['latency_p50_ms']} ms (p99 {f['latency_p99_ms']} ms); produce+consume "
        f"{f['throughput_per_s']:.0f} small records/s.",
        "",
    ]
    if "step" in result:
        s = result["step"]
        lines += [
            f"One durable step (sequential, `bench.step_latency`): p50 {s['step_p50_ms']} ms = "
            f"**{s['step_over_floor']} x the floor** measured right before it on the warmed "
            f"broker ({s['floor_p50_ms']} ms); noop call p50 {s['noop_p50_ms']} ms, call with "
            f"10 steps {s['ten_steps_p50_ms']} ms.",
            "",
        ]
    lines += (
        []
        if not result["rows"]
        else [
            "| workload | concurrency | calls/s | p50 ms | p90 ms | p99 ms | errors | p50 / floor "
            "| cores: worker, ingress, broker, loadgen | peak RSS MB: worker, ingress, broker "
            "| CPU-s per 1k calls: worker, ingress, broker = total |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
    )
    for row in result["rows"]:
        m = row["median"]
        p = m["processes"]
        cpu = m.get("cpu_s_per_1k", {})

        def get(name: str, metric: str, p: dict[str, Any] = p) -> str:
            return str(p[name][metric]) if name in p else "-"

        ratio = m["p50_ms"] / f["latency_p50_ms"] if f["latency_p50_ms"] else float("nan")
        lines.append(
            f"| {row['workload']} | {row['concurrency']} | {m['calls_per_s']} | {m['p50_ms']} "
            f"| {m['p90_ms']} | {m['p99_ms']} | {m['errors']} | {ratio:.1f} "
            f"| {get('worker', 'cpu_cores')}, {get('ingress', 'cpu_cores')}, "
            f"{get('broker', 'cpu_cores')}, {get('loadgen', 'cpu_cores')} "
            f"| {get('worker', 'peak_rss_mb')}, {get('ingress', 'peak_rss_mb')}, "
            f"{get('broker', 'peak_rss_mb')} "
            f"| {cpu.get('worker', '-')}, {cpu.get('ingress', '-')}, {cpu.get('broker', '-')} "
            f"= {cpu.get('total', '-')} |"
        )
    if any("baseline" in row for row in result["rows"]):
        lines += [
            "",
            f"## Against Restate, same run ({result.get('baseline_versions', '')})",
            "",
            "Medians of the alternating repetitions. Ratios are Perdure / Restate: above 1 is "
            "better for calls/s, below 1 is better for latency and CPU.",
            "",
            "| workload | concurrency | Perdure calls/s | Restate calls/s | ratio "
            "| Perdure p50 ms | Restate p50 ms | ratio | Perdure CPU-s/1k | Restate CPU-s/1k "
            "(server + SDK) | ratio |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in result["rows"]:
            if "baseline" not in row:
                continue
            m, b = row["median"], row["baseline"]["median"]
            mc, bc = m.get("cpu_s_per_1k", {}), b.get("cpu_s_per_1k", {})
            lines.append(
                f"| {row['workload']} | {row['concurrency']} | {m['calls_per_s']} "
                f"| {b['calls_per_s']} | {_ratio(m['calls_per_s'], b['calls_per_s'])} "
                f"| {m['p50_ms']} | {b['p50_ms']} | {_ratio(m['p50_ms'], b['p50_ms'])} "
                f"| {mc.get('total', '-')} "
                f"| {bc.get('restate-server', '-')} + {bc.get('restate-sdk', '-')} "
                f"= {bc.get('total', '-')} | {_ratio(mc.get('total', 0), bc.get('total', 0))} |"
            )
    if "subscription_counter" in result:
        sub = result["subscription_counter"]
        lines += [
            "",
            "## subscription_counter",
            "",
            f"A backlog of {sub['records']} records on {sub['keys']} keys through a subscription "
            "to `counter/add` (one worker, one admin process), against a plain consumer reading "
            "the same topic in the same run (the floor).",
            "",
            subscriptions.markdown_table(sub).rstrip("\n"),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Perdure's benchmark harness")
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument(
        "--workloads", default=",".join([*(w.name for w in WORKLOADS), SUBSCRIPTION_COUNTER])
    )
    parser.add_argument(
        "--subscription-records",
        type=int,
        default=100_000,
        help="the backlog of subscription_counter (on --subscription-keys keys)",
    )
    parser.add_argument("--subscription-keys", type=int, default=1000)
    parser.add_argument("--floor-calls", type=int, default=300)
    parser.add_argument("--baseline", choices=("restate", "none"), default="restate")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    parser.add_argument(
        "--perdure-tree",
        default=str(REPO),
        help="a checkout whose worker, ingress and bench app to measure (bench.compare: the "
        "baseline's code under this harness, so both sides get the same load generator)",
    )
    args = parser.parse_args(argv)
    levels = tuple(int(c) for c in args.concurrency.split(","))
    chosen = [w for w in WORKLOADS if w.name in args.workloads.split(",")]
    stack = Stack(partitions=8, tree=Path(args.perdure_tree))
    restate: RestateStack | None = None
    try:
        bootstrap = stack.start()
        if args.baseline == "restate":
            restate = RestateStack()
            restate.start()
        lat = floor.latency_ms(bootstrap, args.floor_calls)
        result: dict[str, Any] = {
            "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python "
            f"{platform.python_version()}",
            "settings": {"duration_s": args.duration, "warmup_s": args.warmup, "reps": args.reps},
            "floor": {
                "latency_p50_ms": round(pct(lat, 50), 3),
                "latency_p99_ms": round(pct(lat, 99), 3),
                "throughput_per_s": round(
                    floor.throughput(bootstrap, 20_000 if args.duration < 5 else 100_000)
                ),
            },
            "rows": [],
            "step": measure_step(stack.url, bootstrap, args.floor_calls),
        }
        if restate is not None:
            result["baseline_versions"] = restate.versions
        for w in chosen:
            for c in w.concurrency or levels:
                if w.concurrency and args.duration < 5:
                    c = min(c, max(levels))
                row = measure(stack, restate, w, c, args)
                result["rows"].append(row)
                m = row["median"]
                line = (
                    f"{w.name:>13} c={c:<3} {m['calls_per_s']:>8} calls/s  p50 {m['p50_ms']} ms  "
                    f"p99 {m['p99_ms']} ms  errors {m['errors']}"
                )
                if "baseline" in row:
                    b = row["baseline"]["median"]
                    line += f"   | Restate {b['calls_per_s']} calls/s  p50 {b['p50_ms']} ms"
                print(line, flush=True)
        if SUBSCRIPTION_COUNTER in args.workloads.split(","):
            records = args.subscription_records if args.duration >= 5 else 300
            keys = min(args.subscription_keys, records)
            sub = subscriptions.measure(bootstrap, records, keys, 8, stack.broker_pid)
            result["subscription_counter"] = sub
            print(
                f"subscription_counter {sub['records_per_s']} records/s "
                f"(floor {sub['floor_records_per_s']}), drained in {sub['drain_s']} s",
                flush=True,
            )
    finally:
        if restate is not None:
            restate.stop()
        stack.stop()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"bench-{stamp}.json").write_text(json.dumps(result, indent=2))
    (out / f"bench-{stamp}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def measure(
    stack: Stack, restate: RestateStack | None, w: Workload, c: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Drives one workload at one concurrency on each system, alternating between them."""
    runs: dict[str, list[dict[str, Any]]] = {"perdure": [], "restate": []}
    systems: list[tuple[str, str, dict[str, int]]] = [("perdure", stack.url, stack.pids())]
    if restate is not None:
        pids = {**restate.pids(), "loadgen": os.getpid()}
        systems.append(("restate", restate.url, pids))
    for rep in range(args.reps):
        # P R, R P, P R, ...: a drift of the machine during the row hits both alike.
        for name, url, pids in systems if rep % 2 == 0 else systems[::-1]:
            usage = Usage(pids)
            # uvloop: the load generator shares the cores with both systems; the less it takes,
            # the more the figures say about them.
            run = drive(url, w, c, args.warmup, args.duration, usage)
            runs[name].append(uvloop.run(run))
    row: dict[str, Any] = {
        "workload": w.name,
        "concurrency": c,
        "runs": runs["perdure"],
        "median": median_of(runs["perdure"]),
    }
    if runs["restate"]:
        row["baseline"] = {"system": "restate", "runs": runs["restate"]}
        row["baseline"]["median"] = median_of(runs["restate"])
    return row


if __name__ == "__main__":
    sys.exit(main())
