"""World: one seeded run of the simulated cluster — its workers, log, clock, workload and faults.

Everything random is drawn from one generator seeded by the run's seed, and everything runs on
one :class:`~partitions.simulation.loop.SimLoop`: the same seed replays the same run, event for
event. The run has two phases: for ``active_s`` of virtual time requests arrive and faults are
injected; then the world is calm (no new fault) until every accepted invocation ended, or a
deadline says something hangs.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field

from perdure.engine.ids import partition_for_key
from perdure.engine.records import SendResponse
from perdure.partitions.local.memory_store import MemoryStore
from perdure.partitions.runtime.processor import PartitionProcessor
from perdure.partitions.simulation.checks import Expectation, Observer, violations
from perdure.partitions.simulation.cluster import Coordinator
from perdure.partitions.simulation.log import LogFaults, SimLog
from perdure.partitions.simulation.worker import SimWorker
from perdure.partitions.simulation.workload import CURRENT_WORKER, Ledger, build

EPOCH_MS = 1_800_000_000_000
"""The virtual clock's zero, in ms since 1970 (what record timestamps and ``ctx.time`` read)."""


@dataclass
class Options:
    """The shape of a run (the seed draws everything else)."""

    steps: int = 24
    """Requests in the generated workload."""
    partitions: int = 3
    workers: int = 3
    active_s: float = 20.0
    settle_limit_s: float = 240.0
    faults: bool = True


@dataclass
class Outcome:
    """What a run found."""

    seed: int
    violations: list[str]
    trace: list[str]
    faults: int
    virtual_s: float
    records: int
    fingerprint: str = ""

    @property
    def ok(self) -> bool:
        return not self.violations


class SimClock:
    """The world's time as the partition runtime reads it (a ``RuntimeClock``)."""

    def now_ms(self) -> int:
        return EPOCH_MS + int(asyncio.get_running_loop().time() * 1000)

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()


@dataclass
class World:
    """The simulated cluster of one seed."""

    seed: int
    options: Options = field(default_factory=Options)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        o = self.options
        self.trace: list[str] = []
        self.clock = SimClock()
        self.session_s = 3.0
        self.lease_s = 2.0  # the session less a renewal interval and a margin, as workers do
        r = self.rng
        faults = (
            LogFaults(
                latency_ms=(0, r.choice([1, 3, 10, 30])),
                fail=r.choice([0.0, 0.01, 0.03, 0.06]),
                duplicate=r.choice([0.0, 0.02, 0.05]),
                late_ack=r.choice([0.0, 0.01, 0.03]),
                slow=r.choice([0.0, 0.005, 0.02]),
            )
            if o.faults
            else LogFaults()
        )
        self.redelivery_chance = r.choice([0.0, 0.05]) if o.faults else 0.0
        self.backup_chance = r.choice([0.0, 0.002, 0.01]) if o.faults else 0.0
        self.slow_chance = r.choice([0.0, 0.2, 0.5])
        self.log = SimLog(
            o.partitions, self.clock.now_ms, self.chance, self.between, faults, self.event
        )
        self.coordinator = Coordinator(o.partitions, self.session_s, self.event)
        self.ledger = Ledger(self.clock.now_ms, self.pause, self.on_awakeable)
        self.app = build(self.ledger)
        self.workers = [SimWorker(self, f"w{i}") for i in range(o.workers)]
        self.fence: dict[int, str] = {}
        self.backups: dict[int, MemoryStore] = {}
        self.published_records: list[object] = []
        self.failures: list[str] = []
        """Loops of the engine that raised (a worker would stop on it)."""
        self.expectations: list[Expectation] = []
        self.must_publish: set[str] = set()
        self.counters: dict[str, set[tuple[int, str]]] = {}
        """Counter key -> (partition, invocation) of each invocation that answers an add."""
        self.wait_inputs: dict[str, int] = {}
        self.awakeables_seen: set[str] = set()
        self.faults_injected = 0
        self.ingress = self.log.producer("ingress")
        self.unsent = 0
        self.unsent_records: list[object] = []
        """Records the world's clients sent that the log has not taken yet."""
        self.responses: dict[str, SendResponse] = {}

    # -- what the parts ask of the world ----------------------------------------------------

    def chance(self) -> float:
        return self.rng.random()

    def between(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def event(self, what: str) -> None:
        t = asyncio.get_running_loop().time()
        self.trace.append(f"{t:9.3f}  {what}")

    @property
    def published(self) -> list[object]:
        return self.published_records

    def answer(self, action: SendResponse) -> None:
        """A leader's answer to the ingress (the responses topic)."""
        self.responses.setdefault(action.response.request_id, action)

    async def pause(self) -> None:
        """A handler's pause point: slow handlers, and a paused worker's handlers wait."""
        loop = asyncio.get_running_loop()
        if self.chance() < self.slow_chance:
            await asyncio.sleep(self.between(1, 400) / 1000)
        worker = self._worker(CURRENT_WORKER.get())
        while worker is not None and worker.paused():  # noqa: ASYNC110 - virtual time, no event
            await asyncio.sleep(worker.paused_until - loop.time())

    def _worker(self, token: str) -> SimWorker | None:
        name = token.split("#")[0]
        return next((w for w in self.workers if w.name == name), None)

    def on_awakeable(self, invocation_id: str, awakeable_id: str) -> None:
        from perdure.partitions.simulation.plan import resolve_later

        resolve_later(self, invocation_id, awakeable_id)

    def take_backup(self, partition: int, proc: PartitionProcessor) -> None:
        """A leader backs its store up; the log may then be trimmed below it."""
        store = proc.store
        if not isinstance(store, MemoryStore):
            return
        copy = store.snapshot()
        self.backups[partition] = copy
        self.event(f"backup of partition {partition} at {copy.applied_offset()}")
        if self.chance() < 0.5:
            self.log.trim(partition, copy.applied_offset() + 1 - self.between(0, 5))

    def restore(self, partition: int) -> tuple[MemoryStore, str]:
        backup = self.backups.get(partition)
        if backup is None:
            return MemoryStore(), "nothing (replaying the log)"
        return backup.snapshot(), f"the backup at {backup.applied_offset()}"

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> Outcome:
        from perdure.partitions.simulation.plan import plan

        loop = asyncio.get_running_loop()
        for worker in self.workers:
            worker.start()
        plan(self)
        observer = Observer(self.options.partitions)
        deadline = self.options.active_s + self.options.settle_limit_s
        while True:
            await asyncio.sleep(1.0)
            if loop.time() < self.options.active_s:
                continue
            observer.catch_up(self.log.history)
            settled = self._settled(observer)
            if settled or loop.time() > deadline:
                break
        for worker in self.workers:
            worker.crash(lose_disk=False)
        await asyncio.sleep(0)
        observer.catch_up(self.log.history)
        published = Counter(
            bytes(getattr(r, "key", b"") or b"").decode() for r in self.published_records
        )
        blocked = [
            f"partition {p} of {w.token} stopped: {proc.blocked_note()}"
            for w in self.workers
            for p, proc in w.runtime.processors.items()
            if proc.blocked is not None
        ]
        found = violations(
            observer,
            self.expectations,
            self.ledger,
            published,
            self.must_publish,
            self.counters,
            lambda key: partition_for_key(key.encode(), self.options.partitions),
            blocked,
        )
        found.extend(self.failures)
        if self.unsent:
            found.append(f"{self.unsent} records of clients were never taken by the log")
        if not settled:
            found.append(f"the run did not settle within {self.options.settle_limit_s:.0f}s")
        records = sum(len(h) for h in self.log.history)
        digest = hashlib.sha256()
        for history in self.log.history:
            for record in history:
                digest.update(record.timestamp()[1].to_bytes(8, "big") + record.value())
        return Outcome(
            self.seed,
            found,
            self.trace,
            self.faults_injected + self.log.faults_injected,
            loop.time(),
            records,
            digest.hexdigest()[:16],
        )

    def _settled(self, observer: Observer) -> bool:
        """Every request was taken, every invocation ended, nothing is still to be sent."""
        if self.unsent or observer.open_invocations():
            return False
        for e in self.expectations:
            if e.rejected:
                continue
            answer = observer.outcome(e.partition, e.invocation_id)
            if answer is None or answer.status.value in ("not_ready", "not_found"):
                return False
        return True


def run_seed(seed: int, options: Options | None = None) -> Outcome:
    """Runs one seed to its end on a fresh simulated loop."""
    from perdure.partitions.simulation.loop import SimLoop

    loop = SimLoop()
    try:
        world = World(seed, options or Options())
        outcome = loop.run_until_complete(world.run())
        _cancel_all(loop)
    finally:
        loop.close()
    return outcome


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
