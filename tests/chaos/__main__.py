"""``python -m tests.chaos``: a chaos run (tests/chaos/suite.py); exit 1 if anything was lost,
doubled, wrong or early.

    python -m tests.chaos                              # 20,000 invocations, 10 faults of each
    python -m tests.chaos --invocations 1500 --faults-per-kind 1      # about what .ci/run runs
    python -m tests.chaos --out bench/results/chaos    # also writes <out>-<time>.json and .md
    python -m tests.chaos --bootstrap 127.0.0.1:9092 --kinds worker-stop,worker-kill
                                                       # on one broker of your own
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.chaos.suite import Chaos, Plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    defaults = Plan()
    parser.add_argument("--invocations", type=int, default=defaults.invocations)
    parser.add_argument("--faults-per-kind", type=int, default=defaults.faults_per_kind)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--partitions", type=int, default=defaults.partitions)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--kinds", default=",".join(defaults.kinds), help="the faults, comma-separated"
    )
    parser.add_argument(
        "--bootstrap", help="use this Kafka as it is (one broker, say): no broker faults"
    )
    parser.add_argument("--workdir", help="keep logs and data here (default: a temporary folder)")
    parser.add_argument("--out", help="write the outcome to OUT-<time>.json and OUT-<time>.md")
    args = parser.parse_args(argv)
    plan = dataclasses.replace(
        defaults,
        invocations=args.invocations,
        faults_per_kind=args.faults_per_kind,
        concurrency=args.concurrency,
        workers=args.workers,
        partitions=args.partitions,
        seed=args.seed,
        kinds=tuple(k for k in args.kinds.split(",") if k),
        bootstrap=args.bootstrap,
    )
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    outcome = Chaos(plan, workdir, log=lambda text: print(text, flush=True)).run()
    for problem in outcome.problems[:30]:
        print(f"chaos: problem: {problem}")
    print(outcome.line(), flush=True)
    if args.out:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = Path(f"{args.out}-{stamp}")
        base.parent.mkdir(parents=True, exist_ok=True)
        doc = {"plan": dataclasses.asdict(plan), "outcome": outcome.as_json()}
        base.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
        faults = "\n".join(
            f"| {f.kind} | {f.detail} | {f.ended - f.started:.1f} |" for f in outcome.faults
        )
        base.with_suffix(".md").write_text(
            f"# Chaos run {stamp}\n\nCommand: `python -m tests.chaos {' '.join(sys.argv[1:])}`\n\n"
            f"```\n{outcome.line()}\n```\n\n| fault | what | seconds |\n| --- | --- | --- |\n"
            f"{faults}\n"
        )
        print(f"chaos: wrote {base}.json and .md")
    if not args.workdir and outcome.ok:
        shutil.rmtree(workdir, ignore_errors=True)
    elif not outcome.ok:
        print(f"chaos: logs in {workdir}")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
