"""From command to first answered call: ``perdure dev --embedded`` against ``perdure dev`` on Kafka.

    python -m bench.startup --rounds 3

Each round, alternately: ``perdure dev --embedded perdure.examples.payments:app`` with a fresh log
folder, ``perdure dev perdure.examples.payments:app`` starting its own local broker in a fresh data
folder (what ``deploy/up.sh`` does once it has installed; the broker's jars are cached), and
``perdure dev`` reusing a broker that already runs. The time is from the command to the first
200 of ``POST /payments/process_payment``. Medians go to ``bench/results/startup-*.md``, with
their ratios to the embedded start measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from bench.procs import free_port

ROOT = Path(__file__).resolve().parent.parent
BROKER = ROOT / "deploy" / "kafka" / "broker.sh"
ORDER = {"orderId": "o-1", "userId": "u-7", "amount": 42}


def first_answer(command: list[str], port: int, env: dict[str, str], limit_s: float = 180) -> float:
    """Seconds from starting ``command`` to its first answered payment; then stops it."""
    began = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while time.monotonic() - began < limit_s:
            if proc.poll() is not None:
                raise RuntimeError(f"{command} exited with {proc.returncode}")
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/payments/process_payment", json=ORDER, timeout=5
                )
                if r.status_code == 200:
                    return time.monotonic() - began
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{command}: no answer within {limit_s}s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def broker(data_dir: Path, port: int, verb: str) -> str:
    env = {**os.environ, "KAFKA_DATA_DIR": str(data_dir), "KAFKA_PORT": str(port)}
    out = subprocess.run(
        ["bash", str(BROKER), verb], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0 and verb == "start":
        raise RuntimeError(out.stderr)
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    me = [sys.executable, "-m", "perdure", "dev", "perdure.examples.payments:app"]
    times: dict[str, list[float]] = {"embedded": [], "kafka, cold broker": [], "kafka, warm": []}
    with tempfile.TemporaryDirectory(prefix="perdure-startup-") as tmp:
        warm_dir, warm_port = Path(tmp) / "warm-kafka", free_port()
        warm = broker(warm_dir, warm_port, "start")
        try:
            for n in range(args.rounds):
                state = Path(tmp) / f"state-{n}"
                port = free_port()
                embedded = [*me, "--embedded", "--port", str(port), "--state-dir", str(state)]
                times["embedded"].append(first_answer(embedded, port, {}))

                cold_dir = Path(tmp) / f"kafka-{n}"
                port = free_port()
                cold = [*me, "--port", str(port), "--admin-port", "0"]
                cold += ["--state-dir", str(state / "kafka-state"), "--cluster", f"cold{n}"]
                env = {"KAFKA_DATA_DIR": str(cold_dir), "KAFKA_PORT": str(free_port())}
                try:
                    times["kafka, cold broker"].append(first_answer(cold, port, env))
                finally:
                    broker(cold_dir, 0, "stop")

                port = free_port()
                reuse = [*me, "--port", str(port), "--admin-port", "0", "--bootstrap", warm]
                reuse += ["--state-dir", str(state / "warm-state"), "--cluster", f"warm{n}"]
                times["kafka, warm"].append(first_answer(reuse, port, {}))
                print({k: round(v[-1], 2) for k, v in times.items()}, flush=True)
        finally:
            broker(warm_dir, warm_port, "stop")
    base = statistics.median(times["embedded"])
    rows = [
        f"| {name} | {statistics.median(v):.2f} | {statistics.median(v) / base:.1f}x | "
        + " ".join(f"{x:.2f}" for x in v)
        + " |"
        for name, v in times.items()
    ]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = ROOT / "bench" / "results" / f"startup-{stamp}.md"
    out.write_text(
        "# From command to first answered call\n\n"
        f"`python -m bench.startup --rounds {args.rounds}`, {datetime.now():%Y-%m-%d %H:%M}, "
        "rounds alternating in one run.\n\n"
        "| how | median s | vs embedded | each round (s) |\n| --- | --- | --- | --- |\n"
        + "\n".join(rows)
        + "\n"
    )
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
