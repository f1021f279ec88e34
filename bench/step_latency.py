"""The latency of one durable step, against the physical floor of the same broker.

    python -m bench.step_latency [--calls 200]

Starts a broker (unless PERDURE_BOOTSTRAP names one), one worker and the ingress with
``bench.app``, then measures, sequentially (concurrency 1):

* floor: one acks=all produce plus its read-back by a consumer, on the same broker;
* noop: an HTTP call to a handler with no steps;
* steps: an HTTP call to a handler with 10 ``ctx.run`` steps.

One step costs ``(steps - noop) / 10``; it is reported as a ratio to the floor, since these
machines are shared and noisy. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.floor import latency_ms

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed_calls(url: str, path: str, body: object, n: int) -> list[float]:
    out = []
    with httpx.Client(timeout=30) as client:
        for _ in range(n):
            start = time.perf_counter()
            r = client.post(url + path, json=body)
            r.raise_for_status()
            out.append((time.perf_counter() - start) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def measure_step(url: str, bootstrap: str, calls: int) -> dict[str, float]:
    """One durable step's p50 next to the floor measured right before it (warmed broker)."""
    timed_calls(url, "/bench/steps", 10, 20)  # warm-up: the broker, the worker, the sockets
    floor = latency_ms(bootstrap, calls)
    noop = timed_calls(url, "/bench/noop", {"a": 1}, calls)
    steps = timed_calls(url, "/bench/steps", 10, calls)
    step_p50 = (pct(steps, 50) - pct(noop, 50)) / 10
    return {
        "floor_p50_ms": round(pct(floor, 50), 3),
        "noop_p50_ms": round(pct(noop, 50), 3),
        "ten_steps_p50_ms": round(pct(steps, 50), 3),
        "step_p50_ms": round(step_p50, 3),
        "step_over_floor": round(step_p50 / pct(floor, 50), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="perdure-bench-"))
    broker_env = None
    bootstrap = os.environ.get("PERDURE_BOOTSTRAP")
    try:
        if not bootstrap:
            broker_env = dict(env, KAFKA_PORT=str(_free_port()), KAFKA_DATA_DIR=str(tmp / "kafka"))
            out = subprocess.run(
                ["bash", str(REPO / "deploy/kafka/broker.sh"), "start"],
                env=broker_env,
                check=True,
                capture_output=True,
                text=True,
            )
            bootstrap = out.stdout.strip().splitlines()[-1]
        cluster = f"bench-{uuid.uuid4().hex[:6]}"
        port = _free_port()
        common = [
            "--bootstrap",
            bootstrap,
            "--cluster",
            cluster,
            "--partitions",
            "4",
            "--log-level",
            "WARNING",
        ]
        me = [sys.executable, "-m", "perdure"]
        procs.append(
            subprocess.Popen(
                [*me, "worker", "bench.app:app", "--state-dir", str(tmp / "state"), *common],
                env=env,
                cwd=REPO,
            )
        )
        procs.append(
            subprocess.Popen([*me, "ingress", "--port", str(port), *common], env=env, cwd=REPO)
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.post(url + "/bench/noop", json=1, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the bench cluster did not come up")
            time.sleep(0.2)
        s = measure_step(url, bootstrap, args.calls)
        print("| measure (sequential) | p50 ms |")
        print("| --- | --- |")
        print(f"| floor: produce acks=all + read back | {s['floor_p50_ms']} |")
        print(f"| noop call over HTTP | {s['noop_p50_ms']} |")
        print(f"| call with 10 steps | {s['ten_steps_p50_ms']} |")
        print(f"\none step (p50): {s['step_p50_ms']} ms = {s['step_over_floor']} x the floor")
        return 0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if broker_env is not None:
            subprocess.run(
                ["bash", str(REPO / "deploy/kafka/broker.sh"), "stop"],
                env=broker_env,
                check=False,
                capture_output=True,
            )


if __name__ == "__main__":
    sys.exit(main())
