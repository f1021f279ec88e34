"""SimWorker: a worker of the simulated cluster — the partition runtime over the simulated log.

It is the Kafka worker with the threads taken out: each tick it renews its lease with the
simulated coordinator, opens the partitions it was given (from its own store, from the newest
backup, or empty) and drops those it lost, hands each partition's new records to the one
:class:`~partitions.runtime.leader.PartitionRuntime`, and runs its duties. Its handlers run
in the real invoker with the real SDK. It can crash (every task stops at whatever await it
was at; its store may lose what was not flushed), be paused (nothing of it runs) or be cut off
from the coordinator while it keeps running (a zombie whose lease lapses).
"""

from __future__ import annotations

import asyncio
import contextvars
from traceback import format_exc
from typing import TYPE_CHECKING

from perdure.engine.model import OutgoingRecord
from perdure.engine.records import Envelope
from perdure.partitions.handlers.invoker import Invoker
from perdure.partitions.lease import Lease
from perdure.partitions.local.memory_store import MemoryStore
from perdure.partitions.metrics import WorkerMetrics
from perdure.partitions.runtime.direct import DirectPort
from perdure.partitions.runtime.leader import LeaderTiming, PartitionRuntime
from perdure.partitions.runtime.processor import PartitionProcessor
from perdure.partitions.simulation.log import SimAppender, Trimmed, Unavailable
from perdure.partitions.simulation.workload import CURRENT_WORKER
from perdure.sdk import InvocationAborted

if TYPE_CHECKING:
    from perdure.partitions.simulation.world import World

RENEW_EVERY_S = 0.5


class SimWorker:
    """One simulated worker process (restartable: each start is a new generation)."""

    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.name = name
        self.generation = 0
        self.alive = False
        self.paused_until = 0.0
        self.cut_until = 0.0
        """Until then the coordinator hears nothing from it (it runs on: a zombie)."""
        self.disk: dict[int, MemoryStore] = {}
        """The partitions' stores as its disk holds them (survive a crash, unless lost)."""
        self._tasks: list[asyncio.Task[None]] = []
        self._renewed_at = -1e9
        self._claims = 0
        self._opened: dict[int, int] = {}

    @property
    def token(self) -> str:
        """This generation's identity (its producers', its claims')."""
        return f"{self.name}#{self.generation}"

    def start(self) -> None:
        w = self.world
        self.generation += 1
        self.alive = True
        self._opened = {}
        self.fence = SimFence(self.world, self.token)
        loop = asyncio.get_running_loop()
        self.lease = Lease(w.lease_s, clock=loop.time)
        metrics = WorkerMetrics()
        self.appender = w.log.producer(self.token)
        self.runtime = PartitionRuntime(
            self.appender,
            w,
            DirectPort(lambda: self.invoker),
            w.clock,
            self.token,
            w.log.partitions,
            metrics,
            self.lease,
            LeaderTiming(
                claim_retry_s=w.session_s,
                redelivery_interval_s=1.0,
                purge_interval_s=None,
            ),
            fence=self.fence,
        )
        self.invoker = Invoker(
            w.app,
            self.appender,
            metrics,
            suspend_after_s=0.5,
            restart=self.runtime.restart,
            ack_timeout_s=3.0,
            publisher=SimPublisher(self),
            lease=self.lease,
        )
        context = contextvars.copy_context()
        context.run(CURRENT_WORKER.set, self.token)
        self._tasks = [
            loop.create_task(self._run(), name=f"{self.token} loop", context=context),
            loop.create_task(self.invoker.watch_acks(), name=f"{self.token} acks", context=context),
        ]
        w.event(f"{self.token} starts")

    def crash(self, lose_disk: bool) -> None:
        """Stops every task of this process where it is; nothing more of it reaches the log."""
        if not self.alive:
            return
        self.alive = False
        self.appender.dead = True
        for task in self._tasks:
            task.cancel()
        for partition in list(self.runtime.processors):
            self.runtime.drop(partition)
        for attempt in list(self.invoker.attempts.values()):
            if attempt.task is not None:
                attempt.task.cancel()
        self.invoker.attempts.clear()
        if lose_disk:
            self.disk.clear()
        self.world.event(f"{self.token} crashes{' and loses its disk' if lose_disk else ''}")

    def paused(self) -> bool:
        return asyncio.get_running_loop().time() < self.paused_until

    async def _run(self) -> None:
        w = self.world
        while True:
            if not self.paused():
                try:
                    self._tick()
                except Exception as err:
                    # A real worker's processor loop stops the worker on this: every partition
                    # it leads stops with it.
                    w.failures.append(f"{self.token}'s loop failed: {err!r}\n{format_exc()}")
                    w.event(f"{self.token}'s loop failed: {err!r}")
                    raise
            await asyncio.sleep(w.between(1, 20) / 1000)

    def _tick(self) -> None:
        w = self.world
        now = asyncio.get_running_loop().time()
        if now - self._renewed_at >= RENEW_EVERY_S:
            self._renewed_at = now
            self.lease.asked()
            ok = w.coordinator.heartbeat(self)
            asyncio.get_running_loop().call_later(w.between(0, 5) / 1000, self.lease.answered, ok)
        if now >= self.cut_until:
            self._follow(w.coordinator.owned(self.token))
        self.runtime.check_lease()
        for partition, proc in list(self.runtime.processors.items()):
            try:
                records = w.log.read(partition, proc.next_offset)
            except Trimmed:
                self._reopen(partition)
                continue
            except Unavailable:
                break
            if records and w.chance() < w.redelivery_chance:
                # The consumer hands over again what it gave before (a re-fetch after a seek).
                again = max(proc.next_offset - 3, w.log.start[partition])
                records = w.log.read(partition, again) or records
            if records:
                self.runtime.apply(proc, records)
            if proc.is_leader and w.chance() < w.backup_chance:
                w.take_backup(partition, proc)
        self.runtime.housekeeping()

    def _follow(self, owned: dict[int, int]) -> None:
        for partition in list(self.runtime.processors):
            if owned.get(partition) != self._opened.get(partition):
                self.runtime.drop(partition)
                self.world.event(f"{self.token} drops partition {partition}")
        for partition in sorted(set(owned) - set(self.runtime.processors)):
            if self._open(partition, member=True):
                self._opened[partition] = owned[partition]

    def _reopen(self, partition: int) -> None:
        self.runtime.drop(partition)
        self.disk.pop(partition, None)
        self.world.event(f"{self.token}: partition {partition} is behind the log's start")
        self._open(partition, member=False)

    def _open(self, partition: int, member: bool) -> bool:
        """Opens a partition's store (and its publish producer, as the runtime decides)."""
        w = self.world
        try:
            start, end = w.log.watermarks(partition)
        except Unavailable:
            return False
        store = self.disk.get(partition)
        how = "its store"
        if store is None or store.applied_offset() + 1 < start:
            store, how = w.restore(partition)
            self.disk[partition] = store
        self.runtime.open_fence(partition, member)
        self._claims += 1
        claim = f"{self.token}/{self._claims}"
        proc = PartitionProcessor(partition, store, claim, end, asyncio.get_running_loop().time)
        self.runtime.processors[partition] = proc
        w.event(f"{self.token} opens partition {partition} from {how} at {proc.next_offset}")
        return True


class SimFence:
    """One worker's publish producers (the ``PublishFence`` port): making one fences every
    earlier producer of its partition, this worker's own included, as ``init_transactions`` on
    a ``transactional.id`` does."""

    def __init__(self, world: World, token: str) -> None:
        self._world = world
        self._token = token
        self._made = 0
        self.producer_of: dict[int, str] = {}
        """Partition -> this worker's current producer of it."""

    def prepare(self, partition: int) -> None:
        self._made += 1
        self.producer_of[partition] = f"{self._token}.{self._made}"
        self._world.fence[partition] = self.producer_of[partition]

    def release(self, partition: int) -> None:
        self.producer_of.pop(partition, None)

    def ready(self, partition: int) -> bool:
        mine = self.producer_of.get(partition)
        return mine is not None and self._world.fence.get(partition) == mine


class SimPublisher:
    """``ctx.publish`` in the simulation: the record and its journal entry both or neither, and
    a producer fenced once another worker opened the partition (as Kafka's transactional ids
    fence a zombie)."""

    def __init__(self, worker: SimWorker) -> None:
        self._w = worker
        self._appender: SimAppender = worker.world.log.producer(f"{worker.token}/tx")

    async def publish(self, partition: int, envelope: Envelope, record: OutgoingRecord) -> None:
        world = self._w.world
        token = self._w.fence.producer_of.get(partition)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def fenced() -> bool:
            return token is None or world.fence.get(partition) != token

        def visible() -> None:
            world.published.append(record)
            c = envelope.command
            world.event(
                f"{token} published the record of {getattr(c, 'invocation_id', '?')} "
                f"(entry {getattr(c, 'index', '?')}, attempt {getattr(c, 'attempt', '?')},"
                f" epoch {envelope.epoch})"
            )

        def committed(err: object) -> None:
            if not done.done():
                if err is None:
                    done.set_result(None)
                else:
                    done.set_exception(RuntimeError(f"the publish transaction failed: {err}"))

        if fenced():
            raise InvocationAborted()  # as the Kafka publisher: another producer owns it
        self._appender.guard = lambda: not fenced() and not self._appender.dead
        self._appender.append(partition, envelope, committed, visible)
        await done
