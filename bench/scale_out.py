"""Scale-out: counter_1000 at one concurrency with 1, 2 and 4 workers on 16 partitions.

    python -m bench.scale_out [--workers 1,2,4] [--duration 15] [--concurrency 64]

One broker and one ingress throughout; for each worker count a fresh cluster (its own topics)
whose workers share the 16 partitions, measured once every worker leads its share. Prints,
and writes to ``bench/results/scale-out-<time>.md``, calls/s and CPU-seconds per 1,000 calls
per process: on a 2-core machine more workers show their overhead, not a speed-up, and the
CPU per call is what a capacity plan on bigger machines starts from.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka.admin import AdminClient

from bench.procs import LocalBroker, Usage, free_port, stop_all
from bench.run import WORKLOADS, cpu_per_1k, drive

REPO = Path(__file__).resolve().parent.parent
PARTITIONS = 16


def _placed(bootstrap: str, group: str, workers: int) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    desc = admin.describe_consumer_groups([group])[group].result(10)
    shares = [len(m.assignment.topic_partitions) for m in desc.members if m.assignment]
    return len(shares) == workers and sum(shares) == PARTITIONS and min(shares) > 0


def measure(bootstrap: str, workers: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    cluster = f"scale-{uuid.uuid4().hex[:6]}"
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    common = ["--bootstrap", bootstrap, "--cluster", cluster]
    common += ["--partitions", str(PARTITIONS), "--log-level", "WARNING"]
    me = [sys.executable, "-m", "perdure"]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for n in range(1, workers + 1):
            state = str(tmp / cluster / f"w{n}")
            procs[f"worker{n}"] = subprocess.Popen(
                [*me, "worker", "bench.app:app", "--state-dir", state, *common], env=env, cwd=REPO
            )
        procs["ingress"] = subprocess.Popen(
            [*me, "ingress", "--port", str(port), *common], env=env, cwd=REPO
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                up = httpx.post(url + "/counter/k0/add", json=1, timeout=5).status_code == 200
                if up and _placed(bootstrap, f"{cluster}.workers", workers):
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{workers} workers did not come up")
            time.sleep(0.5)
        time.sleep(3)  # the last partitions' claims, after the assignment
        usage = Usage({name: p.pid for name, p in procs.items()} | {"loadgen": os.getpid()})
        workload = next(w for w in WORKLOADS if w.name == "counter_1000")
        result = asyncio.run(
            drive(url, workload, args.concurrency, args.warmup, args.duration, usage)
        )
        result["cpu_s_per_1k"] = cpu_per_1k(result)
        return result
    finally:
        stop_all(list(procs.values()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="perdure-scale-"))
    broker = LocalBroker(tmp / "kafka", dict(os.environ))
    bootstrap = broker.start()
    rows = []
    try:
        for n in (int(x) for x in args.workers.split(",")):
            r = measure(bootstrap, n, args, tmp)
            cpu = r["cpu_s_per_1k"]
            per_worker = sum(v for k, v in cpu.items() if k.startswith("worker")) / n
            rows.append(
                f"| {n} | {r['calls_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |"
                f" {r['errors']} | {sum(v for k, v in cpu.items() if k.startswith('worker')):.3f}"
                f" | {per_worker:.3f} | {cpu.get('ingress', 0):.3f} | {cpu.get('total', 0):.3f} |"
            )
            print(rows[-1], flush=True)
    finally:
        broker.stop()
    head = (
        f"# Scale-out, counter_1000 at c={args.concurrency}, {PARTITIONS} partitions\n\n"
        f"Command: `python -m bench.scale_out {' '.join(argv or sys.argv[1:])}`; "
        f"{os.cpu_count()} cores, {args.duration:.0f} s per row after {args.warmup:.0f} s.\n\n"
        "| workers | calls/s | p50 ms | p99 ms | errors | CPU-s/1k, all workers |"
        " CPU-s/1k, per worker | CPU-s/1k, ingress | CPU-s/1k, total |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    )
    text = head + "\n".join(rows) + "\n"
    out = Path(args.out) / f"scale-out-{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.write_text(text)
    print(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
