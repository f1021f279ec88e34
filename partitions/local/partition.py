"""LocalPartition: one partition run in the process that uses it, with no broker (a test
runtime's, or ``perdure dev --embedded``'s).

It is an adapter of the partition runtime (partitions/runtime/), as the Kafka worker is: the
same processor folds each record into the store, the same runtime carries out the leader's
actions (start and acknowledge handlers through the real invoker, deliver between
invocations, fire timers, retry, claim leadership) and takes over again after a crash. What is
its own: the log is in memory (or a file), the clock may be virtual, calls reach the invoker
directly (one event loop), and answers go to waiters in this process.

On a virtual clock, time moves only here (:meth:`_move_clock`): to the next timer while the
test waits for an outcome (auto-advance) or up to the point a test advances to, and only when
every handler waits: a handler in a step is never overtaken by a timer. On the wall clock,
timers fire when their time comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from perdure.engine import state_machine
from perdure.engine.model import JournalEntry
from perdure.engine.records import (
    AckEntry,
    Command,
    Envelope,
    ProposeEntry,
    Response,
    SendResponse,
)
from perdure.engine.status import get_entry
from perdure.partitions.handlers.invoker import Invoker
from perdure.partitions.lease import Lease
from perdure.partitions.local.clock import VirtualClock
from perdure.partitions.local.crashes import AFTER, BEFORE, Crash, CrashPlan
from perdure.partitions.local.memory_log import MemoryLog
from perdure.partitions.local.memory_publisher import MemoryPublisher
from perdure.partitions.local.memory_store import MemoryStore
from perdure.partitions.metrics import WorkerMetrics
from perdure.partitions.runtime.direct import DirectPort
from perdure.partitions.runtime.leader import LeaderTiming, PartitionRuntime
from perdure.partitions.runtime.processor import PartitionProcessor
from perdure.sdk import Endpoint

log = logging.getLogger("perdure.partition")

PARTITION = 0
"""The one partition: every invocation and key of a test runtime lives on it."""
_BUSY_POLL_S = 0.001
"""How often to look again while a handler is in a step (it appends when it is done)."""
_FOREVER_MS = 2**62
_LOCAL_TIMING = LeaderTiming(claim_retry_s=1.0, redelivery_interval_s=None, purge_interval_s=None)
"""Nothing is lost on the way in one process: no redelivery; nor is anything purged."""


class LocalPartition:
    """The store, log, clock and invoker of a test runtime, and the loop that drives them."""

    __test__ = False

    def __init__(
        self,
        app: Endpoint,
        clock: VirtualClock,
        suspend_after_s: float,
        log: MemoryLog | None = None,
        on_response: Callable[[Response], None] | None = None,
        publish: bool = False,
    ) -> None:
        self.clock = clock
        self.store = MemoryStore()
        self.log = log if log is not None else MemoryLog(clock)
        self._on_response = on_response
        """Where responses nobody in this process waits for go (the embedded ingress)."""
        self.log.intercept = self._before_append
        self.publisher = MemoryPublisher(self.log) if publish else None
        """Where ``ctx.publish`` goes (a test runtime's; the embedded log has no Kafka)."""
        metrics = WorkerMetrics()
        self.runtime = PartitionRuntime(
            self.log,
            self,
            DirectPort(lambda: self.invoker, self._survives_ack),
            clock.view(),
            "local",
            1,
            metrics,
            Lease.always(),
            _LOCAL_TIMING,
        )
        self.invoker = Invoker(
            app,
            self.log,
            metrics,
            suspend_after_s=suspend_after_s,
            restart=self._restart,
            ack_timeout_s=3600,  # nothing is lost in memory: no watchdog runs
            publisher=self.publisher,
        )
        self.auto_advance = True
        self.plans: list[CrashPlan] = []
        self.crashes: list[Crash] = []
        self._outcomes: set[str] = set()
        """Requests waiting on an invocation's end: auto-advance moves time for them."""
        self.advance_to_ms: int | None = None
        self.quiet = asyncio.Event()
        self.failure: BaseException | None = None
        self._waiters: dict[str, asyncio.Future[Response]] = {}
        self._leaders = 0
        self.proc = self._open()
        self._task: asyncio.Task[None] | None = None

    def _open(self) -> PartitionProcessor:
        """A processor over the store, as a worker opens a partition assigned to it."""
        self._leaders += 1
        claim = f"local/{self._leaders}"
        view = self.clock.view()
        proc = PartitionProcessor(PARTITION, self.store, claim, len(self.log), view.monotonic)
        self.runtime.processors[PARTITION] = proc
        return proc

    def start(self) -> None:
        """Replays what the log holds (acting on nothing), then leads from there."""
        self.replay()
        self.lead()

    def replay(self) -> None:
        """Applies what the log holds, acting on nothing: its actions were carried out."""
        self._apply()

    def lead(self) -> None:
        """Claims the partition and runs its loop: what runs goes on, timers are armed."""
        if self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(self._pump(), name="test-partition")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.invoker.shutdown()

    @property
    def epoch(self) -> int:
        return state_machine.leader(self.store)[0]

    def append(self, command: Command) -> None:
        """Appends a record as the ingress does (epoch 0: never fenced)."""
        self.check_alive()
        self.log.put(Envelope(command))

    def waiter(self, request_id: str, outcome: bool) -> asyncio.Future[Response]:
        """The future the response to ``request_id`` resolves; drop it with :meth:`forget`.

        ``outcome``: the response comes when an invocation ends, so until it does the test
        waits for time to pass (auto-advance).
        """
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = fut
        if outcome:
            self._outcomes.add(request_id)
        return fut

    def forget(self, request_id: str) -> None:
        self._waiters.pop(request_id, None)
        self._outcomes.discard(request_id)

    def check_alive(self) -> None:
        if self.failure is not None:
            raise RuntimeError("the test runtime stopped") from self.failure

    def pending(self) -> bool:
        """Whether the log holds records not applied yet."""
        return self.proc.next_offset < len(self.log)

    async def wait_quiet(self) -> None:
        """Until every record is applied and every handler waits."""
        while True:
            await self.quiet.wait()
            self.check_alive()
            # Quiet, but a record may have come since: look once more after the loop ran.
            await asyncio.sleep(0)
            if self.quiet.is_set() and not self.pending():
                return

    def wake(self) -> None:
        self.quiet.clear()
        self.log.wake.set()

    # -- the loop ---------------------------------------------------------------------------

    async def _pump(self) -> None:
        try:
            while True:
                if self.pending():
                    self._apply()
                    await asyncio.sleep(0)
                    continue
                if self.runtime.housekeeping():
                    continue
                if not self.invoker.all_waiting():
                    self.quiet.clear()
                    await self._sleep_until_woken(_BUSY_POLL_S)
                    continue
                self.quiet.set()
                if self._move_clock():
                    continue
                await self._sleep_until_woken(self._until_next_timer_s())
        except asyncio.CancelledError:
            raise
        except BaseException as err:
            # A bug of the runtime or the engine: every waiting test call fails with it.
            self.failure = err
            self.quiet.set()
            for fut in self._waiters.values():
                if not fut.done():
                    fut.set_exception(RuntimeError(f"the test runtime stopped: {err!r}"))
            raise

    def _apply(self) -> None:
        records = self.log.read(self.proc.next_offset)
        if records:
            self.runtime.apply(self.proc, records)
            if self.proc.blocked is not None:
                raise RuntimeError(f"partition {PARTITION} {self.proc.blocked_note()}")

    async def _sleep_until_woken(self, within_s: float | None) -> None:
        self.log.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.log.wake.wait(), within_s)

    def _until_next_timer_s(self) -> float | None:
        """On the wall clock, how long until the next timer is due (None: until woken)."""
        due = self.runtime.next_due_ms()
        if not self.clock.wall or due is None:
            return None
        return max(due - self.clock.now_ms, 0) / 1000

    def _move_clock(self) -> bool:
        """Moves the clock to the next timer, if the test waits for time (True: it moved)."""
        target = self.advance_to_ms
        if target is None and self.auto_advance and self._outcomes:
            target = _FOREVER_MS
        if target is None or self.clock.wall:
            return False
        due = self.runtime.next_due_ms()
        if due is not None and due <= target:
            self.clock.move_to(due)
            return True
        if self.advance_to_ms is not None and self.clock.now_ms < self.advance_to_ms:
            self.clock.move_to(self.advance_to_ms)
            return True
        return False

    def _restart(self, partition: int, invocation_id: str) -> None:
        self.runtime.restart(partition, invocation_id)
        self.log.wake.set()

    def answer(self, action: SendResponse) -> None:
        """A response: to the test waiting for it, or to the embedded ingress."""
        fut = self._waiters.get(action.response.request_id)
        if fut is not None and not fut.done():
            fut.set_result(action.response)
        elif self._on_response is not None:
            self._on_response(action.response)
        self._outcomes.discard(action.response.request_id)  # answered: time stands still

    # -- crashes ----------------------------------------------------------------------------

    def _before_append(self, env: Envelope) -> bool:
        c = env.command
        crashed = isinstance(c, ProposeEntry) and self._crash_at(
            BEFORE, c.invocation_id, c.index, c.entry
        )
        return not crashed  # a crash takes the record with it

    def _survives_ack(self, action: AckEntry) -> bool:
        """False when a crash plan takes the worker down before this acknowledgement."""
        return not self._crash_at(AFTER, action.invocation_id, action.index, action.entry)

    def _crash_at(
        self, point: str, invocation_id: str, index: int, entry: JournalEntry | None
    ) -> bool:
        if not self.plans:
            return False
        entry = entry or get_entry(self.store, invocation_id, index)
        if entry is None:
            return False
        if not any(plan.take(point, invocation_id, index, entry) for plan in self.plans):
            return False
        self.crashes.append(Crash(invocation_id, index, entry.name, point))
        asyncio.get_running_loop().call_soon(self._crash)
        return True

    def _crash(self) -> None:
        """The worker dies: every handler stops; a new owner opens the partition from the
        store and takes over (it claims leadership with the next epoch)."""
        self.runtime.drop(PARTITION)
        self.proc = self._open()
        self.log.wake.set()
