"""``python -m partitions.simulation``: runs seeds of the deterministic simulation.

    python -m partitions.simulation --seed 42            # one seed, its trace if it fails
    python -m partitions.simulation --seeds 200          # seeds 0..199, a summary
    python -m partitions.simulation --seeds 10000 --jobs 2
    python -m partitions.simulation --seeds 200 --plant no-lease-check   # must fail

A failing seed prints its violations, the last events before them and the one command that
replays it. Exit status: 0 when every seed kept every invariant, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

from perdure.partitions.simulation.planted import PLANTED
from perdure.partitions.simulation.world import Options, Outcome, run_seed

TRACE_TAIL = 40


def _run(seed: int, steps: int, plant: str | None) -> Outcome:
    logging.disable(logging.CRITICAL)  # the engine's own logs: the trace says what matters
    with PLANTED[plant]() if plant else contextlib.nullcontext():
        return run_seed(seed, Options(steps=steps))


def replay_command(seed: int, steps: int, plant: str | None) -> str:
    """The command that replays one seed, identically."""
    extra = f" --plant {plant}" if plant else ""
    return f"python -m partitions.simulation --seed {seed} --steps {steps}{extra} --trace"


def _outcomes(seeds: list[int], steps: int, plant: str | None, jobs: int) -> Iterator[Outcome]:
    if jobs <= 1:
        for seed in seeds:
            yield _run(seed, steps, plant)
        return
    with ProcessPoolExecutor(jobs) as pool:
        yield from pool.map(_run, seeds, [steps] * len(seeds), [plant] * len(seeds), chunksize=8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m partitions.simulation")
    parser.add_argument("--seed", type=int, help="run this one seed")
    parser.add_argument("--seeds", type=int, default=1, help="run this many seeds")
    parser.add_argument("--first", type=int, default=0, help="the first of --seeds")
    parser.add_argument("--steps", type=int, default=Options.steps, help="requests per run")
    parser.add_argument("--plant", choices=sorted(PLANTED), help="plant a fault first")
    parser.add_argument("--jobs", type=int, default=1, help="processes to run seeds in")
    parser.add_argument("--trace", action="store_true", help="print the whole trace")
    parser.add_argument("--stop", action="store_true", help="stop at the first failing seed")
    args = parser.parse_args(argv)
    seeds = (
        [args.seed] if args.seed is not None else list(range(args.first, args.first + args.seeds))
    )
    began = time.perf_counter()
    failed: list[Outcome] = []
    faults = records = 0
    ran = 0
    for outcome in _outcomes(seeds, args.steps, args.plant, args.jobs):
        ran += 1
        faults += outcome.faults
        records += outcome.records
        if args.trace:
            print("\n".join(outcome.trace))
        if not outcome.ok:
            failed.append(outcome)
            _report(outcome, args.steps, args.plant)
            if args.stop:
                break
    seconds = time.perf_counter() - began
    print(
        f"{ran} seeds in {seconds:.1f}s ({ran / seconds:.1f} seeds/s, {args.jobs} processes):"
        f" {faults / max(ran, 1):.1f} faults and {records / max(ran, 1):.0f} records per run;"
        f" {len(failed)} failed" + (f" (seeds {[o.seed for o in failed][:20]})" if failed else "")
    )
    return 1 if failed else 0


def _report(outcome: Outcome, steps: int, plant: str | None) -> None:
    print(f"seed {outcome.seed} FAILED ({len(outcome.violations)} violations):")
    for v in outcome.violations[:20]:
        print(f"  - {v}")
    print("  the last events:")
    for line in outcome.trace[-TRACE_TAIL:]:
        print(f"    {line}")
    print(f"  replay: {replay_command(outcome.seed, steps, plant)}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
