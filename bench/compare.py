"""Before and after in one run: the harness on a baseline commit and on this tree, interleaved.

These machines are shared and noisy (absolute figures vary about 3x between days), so a change
is judged by the ratio to a baseline measured in the same run, against the same broker, in
alternating rounds. Usage::

    python -m bench.compare --baseline e3afdb9 --workloads three_steps --concurrency 64

The baseline is checked out into a temporary git worktree; each round runs ``bench.run`` once
on the baseline's code and once on this tree's (the order alternates), and the table gives the
medians of the rounds and the ratio this tree / baseline. Both sides run under the harness of
this tree (or of ``--candidate``), so that both get the same load generator; the baseline's
worker and ingress, and its bench app, come from its tree (``bench.run --perdure-tree``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _run(
    harness: Path,
    tree: Path,
    args: argparse.Namespace,
    bootstrap: str,
    out: Path,
    extra_env: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    before = set(out.glob("bench-*.json"))
    cmd = [sys.executable, "-m", "bench.run", "--reps", "1", "--duration", str(args.duration)]
    cmd += ["--perdure-tree", str(tree)]
    cmd += ["--workloads", args.workloads, "--concurrency", args.concurrency]
    cmd += ["--out", str(out), "--floor-calls", "50"]
    cmd += ["--baseline", "none"]  # Perdure against Perdure: no Restate rounds
    env = {**os.environ, "PERDURE_BOOTSTRAP": bootstrap, "PYTHONPATH": str(harness)}
    env.update(extra_env or {})
    subprocess.run(cmd, cwd=harness, env=env, check=True, stdout=subprocess.DEVNULL, timeout=1800)
    (new,) = set(out.glob("bench-*.json")) - before
    rows: list[dict[str, Any]] = json.loads(new.read_text())["rows"]
    new.unlink()
    new.with_suffix(".md").unlink(missing_ok=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--baseline", required=True, help="a git revision")
    parser.add_argument(
        "--candidate", help="a git revision to measure instead of this working tree"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable of the candidate's processes only (repeatable), such as "
        "PERDURE_WORKER_PROCESSES=1",
    )
    parser.add_argument("--workloads", default="three_steps")
    parser.add_argument("--concurrency", default="64")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=15)
    args = parser.parse_args(argv)
    candidate_env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="perdure-compare-") as tmp:
        base = Path(tmp) / "baseline"
        trees = [base]
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), args.baseline],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        this = REPO
        if args.candidate:
            this = Path(tmp) / "candidate"
            trees.append(this)
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(this), args.candidate],
                cwd=REPO,
                check=True,
                capture_output=True,
            )
        broker_env = {
            **os.environ,
            "KAFKA_DATA_DIR": str(Path(tmp) / "kafka"),
            "KAFKA_PORT": os.environ.get("KAFKA_PORT", "39492"),
        }
        broker = [str(REPO / "deploy/kafka/broker.sh")]
        try:
            started = subprocess.run(
                ["bash", *broker, "start"],
                env=broker_env,
                check=True,
                capture_output=True,
                text=True,
            )
            bootstrap = started.stdout.strip().splitlines()[-1]
            results: dict[str, list[list[dict[str, Any]]]] = {"baseline": [], "this": []}
            out = Path(tmp) / "out"
            out.mkdir()
            for i in range(args.rounds):
                order = [("baseline", base), ("this", this)]
                for name, tree in order if i % 2 == 0 else reversed(order):
                    env = candidate_env if name == "this" else {}
                    results[name].append(_run(this, tree, args, bootstrap, out, env))
                    print(f"round {i + 1}: {name} done", flush=True)
        finally:
            subprocess.run(["bash", *broker, "stop"], env=broker_env, capture_output=True)
            for tree in trees:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(tree)],
                    cwd=REPO,
                    capture_output=True,
                )
    what = args.candidate or "this tree"
    print(f"\nbaseline {args.baseline} vs {what}, medians of {args.rounds} interleaved rounds\n")
    print(
        "| workload | c | baseline calls/s | this calls/s | ratio | per-round ratios | p50 "
        "| CPU-s per 1k calls, worker + ingress (ratio) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for k, row in enumerate(results["this"][0]):

        def med(name: str, metric: str, k: int = k) -> float:
            return statistics.median(r[k]["median"][metric] for r in results[name])

        b, t = med("baseline", "calls_per_s"), med("this", "calls_per_s")
        rounds = zip(results["baseline"], results["this"], strict=True)
        ratios = " ".join(
            f"{r[k]['median']['calls_per_s'] / q[k]['median']['calls_per_s']:.2f}"
            for q, r in rounds
        )
        print(
            f"| {row['workload']} | {row['concurrency']} | {b:.0f} | {t:.0f} | {t / b:.2f} "
            f"| {ratios} | {med('baseline', 'p50_ms'):.1f} -> {med('this', 'p50_ms'):.1f} ms "
            f"| {_cpu(results, k)} |"
        )
    return 0


def _cpu(results: dict[str, list[list[dict[str, Any]]]], k: int) -> str:
    """Median CPU-seconds per 1,000 calls of worker and ingress, baseline -> this (ratio).

    CPU per call survives a noisy machine better than calls/s: a neighbour that steals a core
    lowers throughput, not (much) the CPU each call costs.
    """

    def med(name: str) -> float | None:
        per = [r[k]["median"].get("cpu_s_per_1k", {}) for r in results[name]]
        sums = [p["worker"] + p["ingress"] for p in per if "worker" in p and "ingress" in p]
        return statistics.median(sums) if sums else None

    b, t = med("baseline"), med("this")
    if b is None or t is None:
        return "-"
    return f"{b:.3f} -> {t:.3f} ({t / b:.2f})"


if __name__ == "__main__":
    sys.exit(main())
