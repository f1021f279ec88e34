"""What a partition's leader does besides applying records: timers, the outbox, the crossing.

- Timers: a heap per partition of the timers its store holds; due ones are fired by appending
  ``TimerFired``, and again until the store shows one applied (a record Kafka refused is fired
  again, never lost).
- The outbox: commands to other invocations (calls, sends, answers) are delivered when
  journaled and again, on a back-off per entry, until the receiver answers.
- Retries: an invocation whose attempt failed starts again when its back-off ends.

Time comes from the runtime's clock (partitions/runtime/ports.py): the wall clock in workers,
a virtual one in the TestRuntime and the simulator.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable

from perdure.engine import state_machine
from perdure.engine.errors import InvalidId
from perdure.engine.ids import InvocationId
from perdure.engine.records import Deliver, Envelope, RegisterTimer, TimerFired
from perdure.partitions.log import LogAppender
from perdure.partitions.metrics import WorkerMetrics
from perdure.partitions.runtime.processor import PartitionProcessor

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


def forget_fired(proc: PartitionProcessor) -> None:
    """Drops from the head of the heap the timers the store no longer holds (fired and
    applied): so that the next due time is a timer's, not a check that is moot."""
    while proc.timers:
        _, wake_at, invocation_id, index = proc.timers[0]
        if state_machine.timer_armed(proc.store, wake_at, invocation_id, index):
            return
        heapq.heappop(proc.timers)


def schedule_retry(proc: PartitionProcessor, due_ms: int, invocation_id: str) -> None:
    """Starts ``invocation_id`` again at ``due_ms`` (its back-off after a failed attempt)."""
    heapq.heappush(proc.retries, (due_ms, invocation_id))


def due_retries(proc: PartitionProcessor, now_ms: int) -> list[str]:
    """The invocations whose back-off ended by ``now_ms``."""
    out = []
    while proc.retries and proc.retries[0][0] <= now_ms:
        out.append(heapq.heappop(proc.retries)[1])
    return out


def next_due_ms(processors: Iterable[PartitionProcessor]) -> int | None:
    """When the next timer or retry of a led partition is due (None: nothing is)."""
    due = [p.timers[0][0] for p in processors if p.is_leader and p.timers]
    due += [p.retries[0][0] for p in processors if p.is_leader and p.retries]
    return min(due) if due else None


def poll_timeout(processors: Iterable[PartitionProcessor], now_ms: int) -> float:
    """Up to :data:`MAX_POLL_S`, less when a timer is due sooner (timers fire within a few ms)."""
    due = next_due_ms(processors)
    if due is None:
        return MAX_POLL_S
    return min(max((due - now_ms) / 1000, 0.0), MAX_POLL_S)


def fire_timers(proc: PartitionProcessor, writer: LogAppender, now_ms: int) -> int:
    """Appends ``TimerFired`` for due timers, and again until the store shows it applied.

    The store, not the heap, says whether a timer is armed: a record lost on its way (Kafka
    refused it) is simply fired again. Returns how many it fired.
    """
    if not proc.timers or proc.timers[0][0] > now_ms:
        return 0  # the usual pass: nothing to fire
    view = proc.store  # what is committed: the processor's thread applies every batch
    epoch = proc.epoch  # a read of the store: once, not per timer
    fired = []
    while proc.timers and proc.timers[0][0] <= now_ms:
        _, wake_at, invocation_id, index = heapq.heappop(proc.timers)
        if not state_machine.timer_armed(view, wake_at, invocation_id, index):
            continue  # its TimerFired was applied (or the invocation ended)
        writer.append(proc.partition, Envelope(TimerFired(invocation_id, index), epoch))
        fired.append((now_ms + TIMER_REFIRE_MS, wake_at, invocation_id, index))
    for timer in fired:
        heapq.heappush(proc.timers, timer)
    return len(fired)


class Outbox:
    """Delivers a leader's commands to the partitions of their receivers.

    Args:
        writer: the log.
        partition_count: the log's partitions (a receiver's id routes it to one).
        leader_id: this worker's id, the origin of what it delivers.
        metrics: where a command that cannot be routed is counted.
        base_interval_s: the first pause before a delivery is repeated (doubling each time).
    """

    def __init__(
        self,
        writer: LogAppender,
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

    def redeliver(self, proc: PartitionProcessor, now: float) -> None:
        """Delivers again what the outbox holds, each entry on its own back-off.

        The receiver deduplicates (by invocation id, or by the caller's receipt) and answers
        again, so a lost command or a lost answer is made good; the back-off (5 s, doubling to
        5 minutes) keeps a call that waits for a day from writing thousands of records.
        """
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
