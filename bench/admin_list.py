"""Admin list benchmark: a filtered page of ``GET /invocations`` over 100,000 retained invocations.

Usage::

    python -m bench.admin_list                    # 100,000 invocations (about 3 minutes of fill)
    python -m bench.admin_list --invocations 20000

One broker (started here unless ``PERDURE_BOOTSTRAP`` is set), one cluster of 8 partitions with
one worker, an ingress and an admin. The fill: ``--invocations`` calls, of which 1 in 100 is
``bench/three_steps`` and the rest ``bench/noop``, plus ``counter/{key}/add`` on 100 keys, all
kept (retention a day). Then each query below is asked ``--rounds`` times, one at a time, and
its latency from the admin's client side is reported (p50, p95), with the rows it returned:

- ``first page``: no filter, 50 rows (newest first per partition);
- ``common filter``: ``status=completed&service=bench&handler=noop``;
- ``rare filter``: ``handler=three_steps`` (1 % of what is retained: each partition scans up to
  its budget and the page may end early with a cursor);
- ``object key``: ``service=counter&key=k7``;
- ``in flight``: ``status=running,suspended,backing-off`` (read from the in-flight index);
- ``rare outcome``: ``status=failed`` (none in the fill: the whole completion index is read,
  each entry skipped by the outcome it records).

A list goes to every partition through the log and gathers their answers, so its latency is
that of a round trip through Kafka plus each leader's scan. Results go to
``bench/results/admin-list-<time>.{json,md}``; absolute times vary between days on shared
machines, so compare the rows of one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from typing import Any

import httpx

from bench.procs import free_port
from bench.recovery import RESULTS, Bench, Cluster

QUERIES = {
    "first page": {"limit": "50"},
    "common filter": {"status": "completed", "service": "bench", "handler": "noop", "limit": "50"},
    "rare filter": {"handler": "three_steps", "limit": "50"},
    "object key": {"service": "counter", "key": "k7", "limit": "50"},
    "in flight": {"status": "running,suspended,backing-off", "limit": "50"},
    "rare outcome": {"status": "failed", "limit": "50"},
}


def measure(url: str, params: dict[str, str], rounds: int) -> dict[str, Any]:
    """Latency of one page of ``params``, ``rounds`` times (after one warm-up)."""
    seconds: list[float] = []
    rows = 0
    more = False
    with httpx.Client(timeout=60) as client:
        client.get(f"{url}/invocations", params=params)  # warm-up
        for _ in range(rounds):
            started = time.perf_counter()
            r = client.get(f"{url}/invocations", params=params)
            seconds.append(time.perf_counter() - started)
            if r.status_code != 200:
                raise SystemExit(f"{params}: {r.status_code} {r.text}")
            doc = r.json()
            rows = len(doc["invocations"])
            more = doc.get("next_cursor") is not None
    seconds.sort()
    return {
        "p50_ms": statistics.median(seconds) * 1000,
        "p95_ms": seconds[int(0.95 * (len(seconds) - 1))] * 1000,
        "rows": rows,
        "more": more,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Admin list over {result['retained']:,} retained invocations ({result['at']})",
        "",
        f"Fill: {result['fill_calls_per_s']:.0f} calls/s. Command: `{result['command']}`",
        "",
        "| query | p50 ms | p95 ms | rows | more pages |",
        "|---|---:|---:|---:|---|",
    ]
    for name, q in result["queries"].items():
        lines.append(
            f"| {name} | {q['p50_ms']:.1f} | {q['p95_ms']:.1f} | {q['rows']} | "
            f"{'yes' if q['more'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invocations", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args(argv)

    bench = Bench(args.partitions)
    try:
        cluster = Cluster(bench, "admin-list", {"PERDURE_RETENTION_S": "86400"})
        cluster.worker("w")
        admin_port = free_port()
        bench.start(
            ["admin", "--port", str(admin_port), *cluster.common],
            cluster.dir / "admin.log",
            cluster.env,
        )
        cluster.wait_serving()
        rare = args.invocations // 100
        started = time.monotonic()
        cluster.drive("/bench/noop", args.invocations - rare - 100, 1)
        cluster.drive("/bench/three_steps", rare, 1)
        cluster.drive("/counter/k{i}/add", 100, 1)
        fill_rate = args.invocations / (time.monotonic() - started)
        url = f"http://127.0.0.1:{admin_port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the admin is not ready")
            time.sleep(0.5)
        result: dict[str, Any] = {
            "at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["python -m bench.admin_list", *(argv or sys.argv[1:])]),
            "retained": args.invocations + 1,  # and the readiness probe's noop
            "fill_calls_per_s": fill_rate,
            "queries": {name: measure(url, q, args.rounds) for name, q in QUERIES.items()},
        }
    finally:
        bench.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"admin-list-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
