"""The chaos suite: a mixed workload through two ingress replicas while processes and brokers die.

What runs: a three-node Kafka cluster (``deploy/kafka/cluster.sh``), ``workers`` partition
workers and two ingress replicas (``tests/apps/chaos.py``), all real processes. A client sends
``invocations`` calls (multi-step services, tallies on many keys, cross-partition calls,
durable sleeps), each with its own idempotency key, to one replica or the other, and retries a
failed try on the other replica with the same key until it is answered, as any client of a
durable API should. Meanwhile faults are injected one at a time, ``faults_per_kind`` of each:

- ``worker-kill``: ``kill -9`` of a worker, started again a second later on its state;
- ``worker-stop``: ``SIGSTOP`` of a worker for longer than the session timeout, then ``SIGCONT``
  (it comes back a zombie and must be fenced);
- ``ingress-kill``: ``kill -9`` of an ingress replica, started again on its port;
- ``broker-kill``: ``kill -9`` of the broker that leads most of the log's partitions, started
  again on its data;
- ``cluster-restart``: ``kill -9`` of all three brokers at once, then the cluster started again;
- ``net-delay``: 20 ms of delay on loopback (``tc netem``) for a few seconds, where the kernel
  has netem; where not, reported as unavailable.

What is checked, from outside, once the faults stopped: every invocation answered (none lost or
stuck past ``settle_s``), with the right result (``wrong``); every tally equal to the adds sent to
it, and no step run again once a handler held its result (``doubled``); no sleeper woke early
(``early``). A step whose result was not acknowledged yet when a fault struck may run again
(invariant 4): such re-runs are counted (``re-runs``). The handlers write a ledger line for every
run of a step and one when they hold its result (tests/apps/chaos.py); each step's answer names
the run that was journaled. One line sums it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import math
import random
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx

from tests.cluster import Cluster, Proc, free_port, wait_until
from tests.kafka_cluster import KafkaCluster

KINDS = (
    "worker-kill",
    "worker-stop",
    "ingress-kill",
    "broker-kill",
    "cluster-restart",
    "net-delay",
)


@dataclasses.dataclass(frozen=True)
class Plan:
    """How big a chaos run is."""

    invocations: int = 20_000
    faults_per_kind: int = 10
    concurrency: int = 24
    workers: int = 3
    partitions: int = 16
    keys: int = 200
    steps: int = 3
    session_timeout_ms: int = 3000
    gap_s: float = 2.0
    """Pause between one fault's recovery and the next fault."""
    settle_s: float = 180.0
    """How long after the last fault every invocation must be answered."""
    try_timeout_s: float = 30.0
    seed: int = 1
    kinds: tuple[str, ...] = KINDS
    """The faults to inject (ten of each by default)."""
    bootstrap: str | None = None
    """A Kafka to use as it is (one broker, say) instead of starting three: no broker faults."""


@dataclasses.dataclass
class Fault:
    kind: str
    started: float
    ended: float = 0.0
    detail: str = ""


@dataclasses.dataclass
class Outcome:
    """What a run found; ``ok`` when nothing was lost, doubled, wrong or early."""

    invocations: int
    answered: int
    faults: list[Fault]
    unavailable: list[str]
    lost: int
    doubled: int
    wrong: int
    early: int
    zombie: int
    """Steps a worker stopped past its session timeout began after it was stopped and before
    it led a partition again (DESIGN.md invariant 8: none)."""
    reruns: int
    retries: int
    p50_s: float
    p99_s: float
    wall_s: float
    problems: list[str]
    injection_error: str = ""
    """Why the faults stopped before the schedule's end (a process that died by itself)."""

    @property
    def ok(self) -> bool:
        counts = (self.lost, self.doubled, self.wrong, self.early, self.zombie)
        bad = any(counts) or bool(self.injection_error)
        return not bad

    def line(self) -> str:
        by_kind = Counter(f.kind for f in self.faults)
        kinds = ", ".join(f"{k} {by_kind[k]}" for k in KINDS if by_kind[k])
        missing = f" (unavailable: {', '.join(self.unavailable)})" if self.unavailable else ""
        return (
            f"chaos: invocations {self.invocations}, faults {len(self.faults)} ({kinds}){missing},"
            f" lost {self.lost}, doubled {self.doubled}, wrong {self.wrong}, early {self.early},"
            f" zombie {self.zombie},"
            f" re-runs {self.reruns}, client retries {self.retries},"
            f" p50 {self.p50_s * 1000:.0f} ms, p99 {self.p99_s * 1000:.0f} ms,"
            f" wall {self.wall_s:.0f} s"
            + (f"; FAULTS STOPPED: {self.injection_error}" if self.injection_error else "")
        )

    def as_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["ok"] = self.ok
        return doc


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclasses.dataclass
class _Stop:
    """A worker stopped past its session timeout: when, and when it was let go on."""

    proc: Proc
    stopped_at: float
    resumed_at: float


_LEADING = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ \S+ \[(\d+)\] partition \d+: leading"
)


def _first_lead_after(stop: _Stop) -> float:
    """When the stopped worker led a partition again after it resumed (its log; inf: never)."""
    for line in stop.proc.log().splitlines():
        m = _LEADING.match(line)
        if m is None or int(m.group(2)) != stop.proc.pid:
            continue
        at = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if at > stop.resumed_at:
            return at
    return math.inf


class _Call:
    """One invocation of the workload: where it goes, what it must answer."""

    def __init__(self, i: int, plan: Plan, run: str, rng: random.Random) -> None:
        self.i = i
        self.ident = f"{run}-{i}"
        self.key = f"k{rng.randrange(plan.keys)}"
        pick = i % 10
        if pick < 4:
            self.kind, self.path = "steps", "/chaos/steps"
            self.body: dict[str, Any] = {"id": self.ident, "n": plan.steps}
        elif pick < 7:
            self.kind, self.path, self.body = "add", f"/tally/{self.key}/add", {}
        elif pick < 9:
            self.kind, self.path = "relay", "/chaos/relay"
            self.body = {"id": self.ident, "key": self.key}
        else:
            self.kind, self.path = "nap", "/chaos/nap"
            self.body = {"ms": rng.choice((200, 500, 1000))}
        self.result: Any = None
        self.latency_s = 0.0
        self.tries = 0

    def payload(self) -> bytes:
        return b"1" if self.kind == "add" else json.dumps(self.body).encode()

    def check(self, plan: Plan) -> str | None:
        """What is wrong with the answer, or None."""
        r = self.result
        if self.kind == "steps":
            good = isinstance(r, list) and len(r) == plan.steps
            return None if good else f"steps answered {r!r}, not {plan.steps} tokens"
        if self.kind == "add":
            return None if isinstance(r, int) and r > 0 else f"add answered {r!r}"
        if self.kind == "relay":
            good = isinstance(r, dict) and isinstance(r.get("value"), int) and r["value"] > 0
            return None if good else f"relay answered {r!r}"
        if not (isinstance(r, dict) and {"asked", "woke"} <= r.keys()):
            return f"nap answered {r!r}"
        return None


class Chaos:
    """One chaos run: start everything, load and inject, check, stop everything."""

    def __init__(
        self, plan: Plan, workdir: Path, log: Any = print, kafka: KafkaCluster | None = None
    ) -> None:
        """``kafka``: a running cluster to use (left running at the end); by default one of
        its own in ``workdir``, stopped at the end."""
        self.plan = plan
        self.workdir = workdir
        self.say = log
        self.rng = random.Random(plan.seed)
        if plan.bootstrap is not None and {"broker-kill", "cluster-restart"} & set(plan.kinds):
            raise ValueError("broker faults need the suite's own three brokers (no --bootstrap)")
        self._own_kafka = kafka is None and plan.bootstrap is None
        self.kafka = kafka or KafkaCluster(workdir / "kafka")
        self.ledger = workdir / "steps.ledger"
        self.cluster: Cluster | None = None
        self.workers: dict[str, Proc] = {}
        self.ingresses: dict[str, Proc] = {}
        self.ports: dict[str, int] = {}
        self.faults: list[Fault] = []
        self.stops: list[_Stop] = []
        self.unavailable: list[str] = []
        self.faults_done = threading.Event()
        self.faults_ended_at = 0.0
        self.stop_faults = threading.Event()
        self.run_id = uuid.uuid4().hex[:8]
        self.injection_error = ""

    # -- the cluster ----------------------------------------------------------------------------

    def _start(self) -> None:
        bootstrap = self.plan.bootstrap
        if bootstrap is None:
            self.say("chaos: starting three brokers")
            self.kafka.start()  # only the nodes that are down
            bootstrap = self.kafka.bootstrap
        self.cluster = Cluster(
            bootstrap,
            f"chaos-{uuid.uuid4().hex[:6]}",
            self.workdir,
            app="tests.apps.chaos:app",
            partitions=self.plan.partitions,
            env={
                "PERDURE_CHAOS_LEDGER": str(self.ledger),
                "PERDURE_SESSION_TIMEOUT_MS": str(self.plan.session_timeout_ms),
                "PERDURE_LOG_LEVEL": "info",
            },
        )
        for n in range(1, self.plan.workers + 1):
            name = f"w{n}"
            self.workers[name] = self.cluster.start_worker(name)
        for n in (1, 2):
            name = f"ingress-{n}"
            self.ports[name] = free_port()
            self.ingresses[name] = self.cluster.start_ingress(name, self.ports[name])
        for proc in self.workers.values():
            self.cluster.wait_leading(proc, 1, timeout=120)
        self.say(f"chaos: {self.plan.workers} workers, 2 ingresses on {bootstrap}")

    def _stop(self) -> None:
        with contextlib.suppress(Exception):
            _netem(False)
        if self.cluster is not None:
            self.cluster.stop_all()
        if self._own_kafka:
            self.kafka.stop()
        elif self.plan.bootstrap is None:
            self.kafka.start()  # every node up again for whoever uses it next

    # -- faults (on their own thread) -----------------------------------------------------------

    def _inject_all(self) -> None:
        schedule = [k for k in self.plan.kinds for _ in range(self.plan.faults_per_kind)]
        self.rng.shuffle(schedule)
        if "net-delay" in schedule and not _netem_available():
            self.unavailable.append("net-delay (no tc netem on loopback here)")
            schedule = [k for k in schedule if k != "net-delay"]
        try:
            for kind in schedule:
                if self.stop_faults.wait(self.plan.gap_s):
                    return
                fault = Fault(kind, time.time())
                fault.detail = getattr(self, "_" + kind.replace("-", "_"))()
                fault.ended = time.time()
                self.faults.append(fault)
                self.say(
                    f"chaos: fault {len(self.faults)}/{len(schedule)} {kind} {fault.detail}"
                    f" ({fault.ended - fault.started:.1f} s)"
                )
                self._recovered()
        except Exception as err:  # reported; the run fails on it
            self.say(f"chaos: fault injection failed: {err}")
            self.injection_error = str(err).splitlines()[0]
        finally:
            self.faults_ended_at = time.time()
            self.faults_done.set()

    def _recovered(self) -> None:
        """Waits until every process runs and every log partition is fully replicated again:
        one fault at a time, as the suite's claims are about single failures."""
        assert self.cluster is not None
        for proc in [*self.workers.values(), *self.ingresses.values()]:
            if not proc.alive():
                self.say(f"chaos: {proc.name} exited by itself:\n{proc.log()[-3000:]}")
                raise RuntimeError(f"{proc.name} exited by itself (its log is above)")
        for proc in self.workers.values():  # a restarted worker is through its start
            proc.wait_for_log(r"published services", 120)
        if self.plan.bootstrap is None:  # the suite's own brokers: every replica in sync
            self.kafka.wait_all_in_sync(self._log_topic, timeout=120)

    @property
    def _log_topic(self) -> str:
        assert self.cluster is not None
        return f"{self.cluster.name}.log"

    def _pick(self, procs: dict[str, Proc]) -> str:
        return self.rng.choice(sorted(procs))

    def _worker_kill(self) -> str:
        assert self.cluster is not None
        name = self._pick(self.workers)
        self.workers[name].kill9()
        time.sleep(1)
        self.workers[name] = self.cluster.start_worker(name)
        return name

    def _worker_stop(self) -> str:
        name = self._pick(self.workers)
        proc = self.workers[name]
        stopped_at = time.time()
        proc.signal(signal.SIGSTOP)
        time.sleep(self.plan.session_timeout_ms / 1000 * 1.5 + 1)
        proc.signal(signal.SIGCONT)
        self.stops.append(_Stop(proc, stopped_at, time.time()))
        return name

    def _ingress_kill(self) -> str:
        assert self.cluster is not None
        name = self._pick(self.ingresses)
        self.ingresses[name].kill9()
        time.sleep(1)
        self.ingresses[name] = self.cluster.start_ingress(name, self.ports[name])
        return name

    def _broker_kill(self) -> str:
        assert self.cluster is not None
        node = self.kafka.leader_of_most(self._log_topic)
        self.kafka.kill(node)
        time.sleep(3)
        self.kafka.restart(node)
        return f"node {node}"

    def _cluster_restart(self) -> str:
        for node in (1, 2, 3):
            self.kafka.kill(node)
        time.sleep(2)
        self.kafka.start()
        return "nodes 1-3"

    def _net_delay(self) -> str:
        _netem(True)
        try:
            time.sleep(5)
        finally:
            _netem(False)
        return "20 ms on lo for 5 s"

    # -- load -----------------------------------------------------------------------------------

    async def _load(self, calls: list[_Call], rate: float) -> int:
        """Sends calls until ``plan.invocations`` were sent and the faults are over, each until
        answered, at about ``rate`` a second while faults come (as fast as it goes after);
        appends each to ``calls``. Returns the client's retries."""
        retries = 0
        started = time.monotonic()
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=self.plan.try_timeout_s) as client:

            async def send_loop() -> None:
                nonlocal retries
                while len(calls) < self.plan.invocations or not self.faults_done.is_set():
                    call = _Call(len(calls), self.plan, self.run_id, self.rng)
                    calls.append(call)
                    if not self.faults_done.is_set():
                        wait = started + len(calls) / rate - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                    retries += await self._send(client, call)

            progress = asyncio.create_task(self._report_progress(calls))
            try:
                await asyncio.gather(*(send_loop() for _ in range(self.plan.concurrency)))
            finally:
                progress.cancel()
        return retries

    async def _report_progress(self, calls: list[_Call], every_s: float = 15.0) -> None:
        """Says how far the load is every ``every_s``, and which call waits longest: when a run
        is cut short by a time limit its log still tells a slow run from a stuck call."""
        began = time.monotonic()
        while True:
            await asyncio.sleep(every_s)
            waiting = [c for c in calls if c.result is None]
            oldest = max(waiting, key=lambda c: c.tries, default=None)
            about = f"; most tried {oldest.ident} ({oldest.tries} tries)" if oldest else ""
            self.say(
                f"chaos: {time.monotonic() - began:.0f} s: {len(calls)} sent,"
                f" {len(calls) - len(waiting)} answered, {len(waiting)} waiting{about}"
            )

    async def _send(self, client: httpx.AsyncClient, call: _Call) -> int:
        urls = [f"http://127.0.0.1:{self.ports[n]}" for n in sorted(self.ports)]
        began = time.monotonic()
        headers = {"idempotency-key": call.ident, "content-type": "application/json"}
        while True:
            url = urls[(call.i + call.tries) % len(urls)]
            call.tries += 1
            try:
                r = await client.post(url + call.path, content=call.payload(), headers=headers)
            except httpx.HTTPError:
                r = None
            if r is not None and r.status_code == 200:
                call.result = r.json()
                call.latency_s = time.monotonic() - began
                return call.tries - 1
            if r is not None and r.status_code < 500 and r.status_code not in (404, 408, 429):
                # 404 while a restarted replica has not read the registry yet; any other 4xx is
                # an answer, and a wrong one.
                call.result = {"status": r.status_code, "body": r.text[:300]}
                call.latency_s = time.monotonic() - began
                return call.tries - 1
            if self._past_deadline():
                return call.tries - 1
            await asyncio.sleep(min(0.1 * call.tries, 2.0))

    def _past_deadline(self) -> bool:
        """Whether the faults stopped ``settle_s`` ago: an invocation still unanswered is stuck."""
        return self.faults_done.is_set() and time.time() > self.faults_ended_at + self.plan.settle_s

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> Outcome:
        began = time.monotonic()
        try:
            self._start()
            rate = self.plan.invocations / max(self._fault_time_estimate(), 10.0)
            self.say(
                f"chaos: {self.plan.invocations} invocations or more, about {rate:.0f}/s"
                " while the faults come"
            )
            injector = threading.Thread(target=self._inject_all, name="faults", daemon=True)
            injector.start()
            calls: list[_Call] = []
            retries = asyncio.run(self._load(calls, rate))
            injector.join(60)
            return self._check(calls, retries, time.monotonic() - began)
        finally:
            self.stop_faults.set()
            self._stop()

    def _fault_time_estimate(self) -> float:
        each = {
            "worker-kill": 6,
            "worker-stop": self.plan.session_timeout_ms / 1000 * 1.5 + 3,
            "ingress-kill": 5,
            "broker-kill": 16,
            "cluster-restart": 30,
            "net-delay": 6,
        }
        kinds = [k for k in self.plan.kinds if k in each]
        per_round = sum(each[k] for k in kinds) + self.plan.gap_s * len(kinds)
        return per_round * self.plan.faults_per_kind

    def _tallies(self, keys: set[str]) -> dict[str, int]:
        url = f"http://127.0.0.1:{self.ports['ingress-1']}"
        out = {}
        with httpx.Client(timeout=30) as client:
            for key in sorted(keys):
                out[key] = int(client.post(f"{url}/tally/{key}/get").json())
        return out

    def _check(self, calls: list[_Call], retries: int, wall_s: float) -> Outcome:
        problems: list[str] = []
        answered = [c for c in calls if c.result is not None]
        lost = len(calls) - len(answered)
        if lost:
            first = next(c for c in calls if c.result is None)
            problems.append(f"{lost} never answered, e.g. {first.ident} ({first.kind})")
        wrong = 0
        early = 0
        for c in answered:
            why = c.check(self.plan)
            if why is not None:
                wrong += 1
                if len(problems) < 20:
                    problems.append(f"{c.ident}: {why}")
            elif c.kind == "nap" and c.result["woke"] - c.result["asked"] < c.body["ms"] / 1000:
                early += 1
                problems.append(f"{c.ident} woke early: {c.result}")
        # Tallies: exactly the adds and relays sent to each key, each once.
        expected: Counter[str] = Counter(c.key for c in calls if c.kind in ("add", "relay"))
        doubled = 0
        wait_until(lambda: self._cluster_serving(), 120, "the ingress to answer the tally reads")
        actual = self._tallies(set(expected))
        for key, want in expected.items():
            if actual.get(key) != want:
                doubled += abs(actual.get(key, 0) - want)
                problems.append(f"tally {key}: {actual.get(key)} after {want} adds")
        seen: dict[str, set[int]] = defaultdict(set)
        for c in answered:
            if c.check(self.plan) is not None or c.kind not in ("add", "relay"):
                continue
            value = c.result if c.kind == "add" else c.result["value"]
            if value in seen[c.key]:
                doubled += 1
                problems.append(f"tally {c.key}: two adds both answered {value}")
            seen[c.key].add(value)
        zombie = self._zombie_runs()
        if zombie:
            problems.append(
                f"{len(zombie)} steps began in a stopped worker before it led again: {zombie[:3]}"
            )
        reruns, after_journaled, unknown = self._reruns(answered)
        doubled += after_journaled
        wrong += unknown
        if after_journaled:
            problems.append(f"{after_journaled} step runs came after a handler held the result")
        if unknown:
            problems.append(f"{unknown} journaled step results match no run in the ledger")
        latencies = [c.latency_s for c in answered]
        return Outcome(
            invocations=len(calls),
            answered=len(answered),
            faults=self.faults,
            unavailable=self.unavailable,
            lost=lost,
            doubled=doubled,
            wrong=wrong,
            early=early,
            zombie=len(zombie),
            reruns=reruns,
            retries=retries,
            p50_s=_percentile(latencies, 0.5),
            p99_s=_percentile(latencies, 0.99),
            wall_s=wall_s,
            problems=problems,
            injection_error=self.injection_error,
        )

    def _cluster_serving(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.ports['ingress-1']}/health"
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _zombie_runs(self) -> list[str]:
        """Step runs (ledger lines) that a stopped worker began after its SIGSTOP and before
        it led a partition again: each stop's window is [stopped, first "leading" after the
        SIGCONT). A step it was running at the stop began before it, and may finish."""
        if not self.ledger.exists() or not self.stops:
            return []
        windows = [(s.proc.pid, s.stopped_at, _first_lead_after(s)) for s in self.stops]
        found = []
        for line in self.ledger.read_text().splitlines():
            fields = line.split("\t")
            if fields[0] == "ack" or len(fields) < 4:
                continue
            at, _, pid = fields[3].partition("/")
            for w_pid, since, until in windows:
                if int(pid) == w_pid and since < float(at) < until:
                    found.append(line)
        return found

    def _reruns(self, answered: list[_Call]) -> tuple[int, int, int]:
        """Steps that ran more than once, from the ledger and the answers: (re-runs, runs after
        a handler held the step's result, journaled tokens the ledger does not hold).

        Invariant 4 allows a step to run again until its result is acknowledged to the
        handler: a run whose proposal was journaled but whose acknowledgement never arrived
        (a produce that timed out while the partition's broker died) is a re-run, not a double.
        A run that starts after any ``ack`` line of its step is a double.
        """
        runs: dict[tuple[str, str], list[str]] = defaultdict(list)
        acks: dict[tuple[str, str], float] = {}
        if self.ledger.exists():
            for line in self.ledger.read_text().splitlines():
                fields = line.split("\t")
                if fields[0] == "ack":
                    at = float(fields[3].split("/")[0])
                    key = (fields[1], fields[2])
                    acks[key] = min(at, acks.get(key, at))
                else:
                    runs[(fields[1], fields[2])].append(fields[3])
        journaled: dict[tuple[str, str], str] = {}
        for c in answered:
            if c.check(self.plan) is not None:
                continue
            if c.kind == "steps":
                journaled.update({(c.ident, str(i)): t for i, t in enumerate(c.result)})
            elif c.kind == "relay":
                journaled[(c.ident, "0")] = c.result["token"]
        reruns = after_ack = unknown = 0
        for step, token in journaled.items():
            times = runs.get(step, [])
            if token not in times:
                unknown += 1
                continue
            reruns += len(times) - 1
            acked = acks.get(step)
            late = [t for t in times if acked is not None and float(t.split("/")[0]) > acked]
            after_ack += len(late)
            if late:
                self.say(f"chaos: step {step} ran after its result was acknowledged: {late}")
        return reruns, after_ack, unknown


def _netem_available() -> bool:
    try:
        _netem(True)
    except (OSError, subprocess.CalledProcessError):
        return False
    _netem(False)
    return True


def _netem(on: bool) -> None:
    if on:
        subprocess.run(
            ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "20ms"],
            check=True,
            capture_output=True,
            timeout=10,
        )
    else:
        subprocess.run(
            ["tc", "qdisc", "del", "dev", "lo", "root"],
            check=False,
            capture_output=True,
            timeout=10,
        )
