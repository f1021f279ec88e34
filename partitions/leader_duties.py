"""What a partition's leader does besides applying records: timers, the outbox, the crossing.

- Timers: a heap per partition of the timers its store holds; due ones are fired by appending
  ``TimerFired``, and again until the store shows one applied (a record Kafka refused is fired
  again, never lost).
- The outbox: commands to other invocations (calls, sends, answers) are delivered when
  journaled and again, on a back-off per entry, until the receiver answers.
- The crossing to the invoker's event loop: what a batch of records asks of the invoker
  (start, acknowledge, end) goes over in one wake-up of the loop.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable

from engine import state_machine
from engine.errors import InvalidId
from engine.ids import InvocationId
from engine.records import Deliver, Envelope, RegisterTimer, TimerFired
from partitions.log import LogWriter
from partitions.metrics import WorkerMetrics
from partitions.processor import PartitionProcessor

log = logging.getLogger("perdure.worker")

REDELIVERY_CAP_S = 300.0
"""The longest pause between two deliveries of one outbox entry."""
TIMER_REFIRE_MS = 2000
"""How long a fired timer may stay unapplied before it is fired again."""
MAX_POLL_S = 0.05
"""The longest the processor waits for records when no timer is due sooner."""


def arm(proc: PartitionProcessor, timer: RegisterTimer) -> None:
    """Adds a timer the store now holds to the leader's heap."""
    entry = (timer.wake_at_ms, timer.wake_at_ms, timer.invocation_id, timer.index)
    heapq.heappush(proc.timers, entry)


def arm_all(proc: PartitionProcessor) -> None:
    """The heap of every timer in the store (a new leader's)."""
    proc.timers = [
        (t.wake_at_ms, t.wake_at_ms, t.invocation_id, t.index)
        for t in state_machine.timers(proc.store)
    ]
    heapq.heapify(proc.timers)


def poll_timeout(processors: Iterable[PartitionProcessor]) -> float:
    """Up to :data:`MAX_POLL_S`, less when a timer is due sooner (timers fire within a few ms)."""
    due = [p.timers[0][0] for p in processors if p.is_leader and p.timers]
    if not due:
        return MAX_POLL_S
    return min(max(min(due) / 1000 - time.time(), 0.0), MAX_POLL_S)


def fire_timers(proc: PartitionProcessor, writer: LogWriter) -> None:
    """Appends ``TimerFired`` for due timers, and again until the store shows it applied.

    The store, not the heap, says whether a timer is armed: a record lost on its way (Kafka
    refused it) is simply fired again.
    """
    now_ms = time.time() * 1000
    if not proc.timers or proc.timers[0][0] > now_ms:
        return  # the usual pass: nothing to fire
    view = proc.store  # what is committed: the processor's thread applies every batch
    epoch = proc.epoch  # a read of the store: once, not per timer
    fired = []
    while proc.timers and proc.timers[0][0] <= now_ms:
        _, wake_at, invocation_id, index = heapq.heappop(proc.timers)
        if not state_machine.timer_armed(view, wake_at, invocation_id, index):
            continue  # its TimerFired was applied (or the invocation ended)
        writer.append(proc.partition, Envelope(TimerFired(invocation_id, index), epoch))
        fired.append((int(now_ms) + TIMER_REFIRE_MS, wake_at, invocation_id, index))
    for timer in fired:
        heapq.heappush(proc.timers, timer)


class Outbox:
    """Delivers a leader's commands to the partitions of their receivers.

    Args:
        writer: the worker's log writer.
        partition_count: the log's partitions (a receiver's id routes it to one).
        leader_id: this worker's id, the origin of what it delivers.
        metrics: where a command that cannot be routed is counted.
        base_interval_s: the first pause before a delivery is repeated (doubling each time).
    """

    def __init__(
        self,
        writer: LogWriter,
        partition_count: int,
        leader_id: str,
        metrics: WorkerMetrics,
        base_interval_s: float,
    ) -> None:
        self.writer = writer
        self.partition_count = partition_count
        self.leader_id = leader_id
        self.metrics = metrics
        self.base_interval_s = base_interval_s

    def deliver(self, action: Deliver) -> None:
        """Sends a record to the partition of another invocation (or of this one)."""
        try:
            partition = InvocationId.parse(action.route_id).partition(self.partition_count)
        except InvalidId:
            # Ids are checked when journaled; one that slips through is dropped loudly rather
            # than stopping every leader that delivers it again.
            self.metrics.action_errors.inc()
            log.error("cannot deliver %r: %r is not an invocation id", action, action.route_id)
            return
        self.writer.append(partition, Envelope(action.command, 0, self.leader_id))

    def redeliver(self, proc: PartitionProcessor) -> None:
        """Delivers again what the outbox holds, each entry on its own back-off.

        The receiver deduplicates (by invocation id, or by the caller's receipt) and answers
        again, so a lost command or a lost answer is made good; the back-off (5 s, doubling to
        5 minutes) keeps a call that waits for a day from writing thousands of records.
        """
        now = time.monotonic()
        proc.last_redelivery = now
        seen: set[bytes] = set()
        for key, action in state_machine.outbox(proc.store):
            seen.add(key)
            count, due = proc.redeliveries.get(key, (0, 0.0))
            if due > now:
                continue
            self.deliver(action)
            pause = min(self.base_interval_s * 2**count, REDELIVERY_CAP_S)
            proc.redeliveries[key] = (count + 1, now + pause)
        for key in list(proc.redeliveries):
            if key not in seen:
                del proc.redeliveries[key]


Call = tuple[Callable[..., None], tuple[object, ...]]


class LoopCrossing:
    """Runs calls on the invoker's event loop, in order; the processor's batch goes at once.

    A wake-up of the loop per action cost a syscall and a thread switch each: while the
    processor applies a batch (between :meth:`gather` and :meth:`flush`) its calls are
    gathered and handed over in one. Calls from any other thread, or outside a batch, go at
    once.
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._gathered: list[Call] | None = None
        self._processor_thread = 0

    def gather(self) -> None:
        """From the processor's thread: gather the calls until :meth:`flush`."""
        self._processor_thread = threading.get_ident()
        self._gathered = []

    def call(self, fn: Callable[..., None], *args: object) -> None:
        """Runs ``fn(*args)`` on the loop, after every call made before."""
        if self._gathered is not None and threading.get_ident() == self._processor_thread:
            self._gathered.append((fn, args))
            return
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn, *args)

    def flush(self) -> None:
        """Hands the gathered calls over in one wake-up of the loop."""
        calls, self._gathered = self._gathered, None
        if calls:
            assert self.loop is not None
            self.loop.call_soon_threadsafe(_run_all, calls)


def _run_all(calls: list[Call]) -> None:
    # Each on its own, as separate loop callbacks would be: one that fails stops no other.
    for fn, args in calls:
        try:
            fn(*args)
        except Exception:
            log.exception("on the invoker's loop: %s failed", getattr(fn, "__name__", fn))
