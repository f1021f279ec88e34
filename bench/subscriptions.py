"""subscription_counter: a backlog drained through a subscription, against the raw consume rate.

    python -m bench.subscriptions [--records 100000] [--keys 1000] [--partitions 8]

A topic gets ``--records`` records on ``--keys`` keys (value ``1``); the floor is a plain
consumer reading them all (same broker, same run). Then a worker hosting ``bench.app`` and a
``perdure admin`` start, a subscription ``topic -> counter/add`` is created, and the time until
every record's invocation ended (lag 0, nothing in flight) is the drain time. Reported: records/s
of both, their ratio, and CPU-seconds per 1,000 records of worker, admin and broker. Results go
to ``bench/results/subscriptions-<time>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.procs import LocalBroker, Usage, free_port, stop_all

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def fill(bootstrap: str, topic: str, records: int, keys: int, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, replication_factor=-1)])[topic].result(30)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True})
    for i in range(records):
        while True:
            try:
                p.produce(topic, key=f"key-{i % keys}".encode(), value=b"1")
                break
            except BufferError:
                p.poll(0.05)
        if i % 5000 == 0:
            p.poll(0)
    p.flush(60)


def floor(bootstrap: str, topic: str, records: int) -> float:
    """Seconds for a plain consumer to read the whole topic."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"floor-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    md = c.list_topics(topic, timeout=10).topics[topic]
    c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
    seen = 0
    start = time.monotonic()
    while seen < records:
        seen += sum(1 for m in c.consume(1000, 1.0) if m.error() is None)
    took = time.monotonic() - start
    c.close()
    return took


def drain(
    bootstrap: str,
    topic: str,
    records: int,
    partitions: int,
    tmp: Path,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cluster = f"subbench-{uuid.uuid4().hex[:6]}"
    port = free_port()
    common = ["--bootstrap", bootstrap, "--cluster", cluster, "--partitions", str(partitions)]
    common += ["--log-level", "WARNING"]
    me = [sys.executable, "-m", "perdure"]
    worker = subprocess.Popen(
        [*me, "worker", "bench.app:app", "--state-dir", str(tmp / "state"), *common], env=env
    )
    admin = subprocess.Popen([*me, "admin", "--port", str(port), *common], env=env)
    procs = [worker, admin]
    url = f"http://127.0.0.1:{port}"
    try:
        body = {"source": f"kafka://default/{topic}", "sink": "service://counter/add"}
        deadline = time.monotonic() + 120
        while True:
            try:
                r = httpx.post(f"{url}/subscriptions", json=body, timeout=10)
                if r.status_code == 201:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the subscription could not be made (is the worker up?)")
            time.sleep(0.5)
        sub_id = r.json()["id"]
        pids = {"worker": worker.pid, "admin": admin.pid}
        if broker_pid is not None:
            pids["broker"] = broker_pid
        usage = Usage(pids)
        usage.begin()
        start = time.monotonic()
        status: dict[str, Any] = {}
        while True:
            time.sleep(0.5)
            usage.sample()
            status = httpx.get(f"{url}/subscriptions/{sub_id}", timeout=10).json()["status"]
            if status.get("records", 0) >= records and status.get("in_flight", 1) == 0:
                break
            if time.monotonic() - start > 3600:
                raise SystemExit(f"not drained in an hour: {status}")
        took = time.monotonic() - start
        return {"seconds": took, "usage": usage.end(took), "status": status}
    finally:
        stop_all(procs)


def measure(
    bootstrap: str,
    records: int,
    keys: int,
    partitions: int,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    """Fills a topic, measures the floor, then drains it through a subscription."""
    tmp = Path(tempfile.mkdtemp(prefix="perdure-subbench-"))
    topic = f"readings-{uuid.uuid4().hex[:6]}"
    fill(bootstrap, topic, records, keys, partitions)
    floor_s = floor(bootstrap, topic, records)
    drained = drain(bootstrap, topic, records, partitions, tmp, broker_pid)
    rate = records / drained["seconds"]
    floor_rate = records / floor_s
    cpu = {
        name: round(u["cpu_cores"] * drained["seconds"] / records * 1000, 3)
        for name, u in drained["usage"].items()
    }
    return {
        "records": records,
        "keys": keys,
        "partitions": partitions,
        "floor_records_per_s": round(floor_rate),
        "records_per_s": round(rate),
        "ratio_to_floor": round(rate / floor_rate, 4),
        "drain_s": round(drained["seconds"], 1),
        "cpu_s_per_1k": cpu,
        "peak_rss_mb": {n: u["peak_rss_mb"] for n, u in drained["usage"].items()},
    }


def markdown_table(result: dict[str, Any]) -> str:
    """The result as a Markdown table (one row)."""
    cpu = result["cpu_s_per_1k"]
    return (
        "| records | keys | floor (plain consumer) records/s | subscription records/s | "
        "ratio | drain s | CPU-s per 1k: worker / admin / broker |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n"
        f"| {result['records']} | {result['keys']} | {result['floor_records_per_s']} | "
        f"{result['records_per_s']} | {result['ratio_to_floor']} | {result['drain_s']} | "
        f"{cpu.get('worker')} / {cpu.get('admin')} / {cpu.get('broker', '-')} |\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.subscriptions")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the results")
    args = parser.parse_args(argv)
    broker = None
    bootstrap = os.environ.get("PERDURE_BOOTSTRAP")
    if not bootstrap:
        broker = LocalBroker(Path(tempfile.mkdtemp(prefix="perdure-subbench-")), dict(os.environ))
        bootstrap = broker.start()
    try:
        pid = broker.pid if broker is not None else None
        result = measure(bootstrap, args.records, args.keys, args.partitions, pid)
    finally:
        if broker is not None:
            broker.stop()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"subscriptions-{stamp}.json").write_text(json.dumps(result, indent=2))
    md = (
        f"# subscription_counter ({stamp})\n\n"
        f"`python -m bench.subscriptions --records {args.records} --keys {args.keys}`: a backlog "
        f"on {args.partitions} partitions through a subscription to `counter/add`, one worker, "
        "one admin, broker on the same cores.\n\n" + markdown_table(result)
    )
    (args.out / f"subscriptions-{stamp}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
