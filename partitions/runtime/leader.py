"""PartitionRuntime: applies a partition's records and carries out what its leader must do.

The one dispatch of leader actions (DESIGN.md, "the partition runtime"). Whoever reads the log
(the Kafka worker's consumer thread, the local partition's loop, the simulator) hands each
partition's records to :meth:`PartitionRuntime.apply` and calls :meth:`housekeeping` between
batches; everything else happens here, the same way for all of them:

- a record batch is folded by the partition's processor (``partitions/runtime/processor.py``:
  state and applied offset in one commit); its actions, only a leader's, are carried out;
- a new leader starts what runs, arms the timers its store holds and delivers its outbox;
- between batches: retries whose back-off ended, due timers, leadership claims, redeliveries,
  backups and the purge of expired invocations;
- no effect without a current lease (DESIGN.md invariant 8): a lapsed lease steps down from
  every partition before anything queued runs.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from perdure.engine import state_machine
from perdure.engine.records import (
    AckEntry,
    Action,
    AnnounceLeader,
    AnswerQuery,
    Deliver,
    Envelope,
    InvocationEnded,
    Invoked,
    PurgeExpired,
    Query,
    RegisterTimer,
    ScheduleRetry,
    SendResponse,
    StartInvocation,
    SweepAgain,
    TrimLog,
)
from perdure.partitions.handlers import invocation_log
from perdure.partitions.lease import Lease
from perdure.partitions.log import LogAppender
from perdure.partitions.metrics import WorkerMetrics
from perdure.partitions.runtime import duties
from perdure.partitions.runtime.duties import Outbox
from perdure.partitions.runtime.ports import (
    InvokerPort,
    LogRecord,
    PublishFence,
    Responder,
    RuntimeClock,
)
from perdure.partitions.runtime.processor import Applied, PartitionProcessor

log = logging.getLogger("perdure.worker")


@dataclass(frozen=True)
class LeaderTiming:
    """How often a leader does its periodic duties (None: never, where nothing is lost).

    Args:
        claim_retry_s: how long a claim of leadership may go unanswered before it is made
            again (and how long a displaced owner waits before reclaiming).
        redelivery_interval_s: the first pause before an outbox entry is delivered again.
        purge_interval_s: how often expired invocations are purged.
        retention_s: how long a completed invocation is kept.
    """

    claim_retry_s: float = 10.0
    redelivery_interval_s: float | None = 5.0
    purge_interval_s: float | None = 60.0
    retention_s: float = 86_400.0


class Recovery(Protocol):
    """Backups and trims of a leader's partitions (partitions/storage/recovery.py, the worker's)."""

    def maybe_backup(self, proc: PartitionProcessor, now: float) -> None: ...

    def trim(self, partition: int, action: TrimLog) -> None: ...


class Queries(Protocol):
    """Answers operators' queries off the runtime's thread (partitions/queries.py)."""

    def submit(self, partition: int, snapshot: Any, query: Query) -> None: ...


class PartitionRuntime:
    """The partitions one process owns, and what it does as their leader.

    Args:
        log: where records are appended (with the leader's epoch).
        responder: where answers to callers go.
        invoker: how handlers are started, acknowledged and released.
        clock: wall or virtual time.
        leader_id: this process's identity as the origin of what it delivers.
        partition_count: the log's partitions (to route what the outbox delivers).
        metrics: the worker's metrics.
        lease: whether this process may act as a leader now.
        timing: the intervals of the periodic duties.
        recovery: backups and trims (the Kafka worker's; None elsewhere).
        queries: answers operators' queries (the Kafka worker's; None elsewhere).
        fence: the partitions' publish producers (None: nothing publishes through Kafka
            transactions). See :meth:`open_fence`.
    """

    def __init__(
        self,
        log: LogAppender,
        responder: Responder,
        invoker: InvokerPort,
        clock: RuntimeClock,
        leader_id: str,
        partition_count: int,
        metrics: WorkerMetrics,
        lease: Lease,
        timing: LeaderTiming,
        recovery: Recovery | None = None,
        queries: Queries | None = None,
        fence: PublishFence | None = None,
    ) -> None:
        self.log = log
        self.responder = responder
        self.invoker = invoker
        self.clock = clock
        self.metrics = metrics
        self.lease = lease
        self.timing = timing
        self.recovery = recovery
        self.queries = queries
        self.fence = fence
        self._unfenced: set[int] = set()
        """Owned partitions whose producer is made once the lease is current again."""
        self.processors: dict[int, PartitionProcessor] = {}
        self.outbox = Outbox(
            log, partition_count, leader_id, metrics, timing.redelivery_interval_s or 5.0
        )
        self._restarts: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()

    # -- records ------------------------------------------------------------------------------

    def apply(self, proc: PartitionProcessor, records: Sequence[LogRecord]) -> Applied:
        """Applies a batch of ``proc``'s records and carries out what its leader must."""
        applied = proc.apply(records)
        self.metrics.records_applied.inc(len(records))
        if applied.rejected:
            self.metrics.records_rejected.inc(applied.rejected)
        if applied.lost_leadership:
            self.stop_leading(proc)
        if applied.became_leader:
            try:
                self.take_over(proc)
            except Exception:
                self.metrics.action_errors.inc()
                log.exception("partition %d: taking over failed in part", proc.partition)
        for action in applied.actions:
            try:
                self.act(proc, action)
            except Exception:
                # An action that cannot be carried out must not stop the process (and with it
                # every partition it leads); what it was for is redone from the store later.
                self.metrics.action_errors.inc()
                log.exception("partition %d: action %r failed", proc.partition, action)
        return applied

    def act(self, proc: PartitionProcessor, action: Action) -> None:
        """Carries out one leader action."""
        if isinstance(action, StartInvocation):
            self.invoker.start(proc.partition, proc.epoch, action)
        elif isinstance(action, AckEntry):
            self.invoker.ack(proc.partition, action)
        elif isinstance(action, SendResponse):
            self.responder.answer(action)
        elif isinstance(action, ScheduleRetry):
            if action.delay_ms <= 0:
                self._restart_now(proc, action.invocation_id)
            else:
                due = self.clock.now_ms() + action.delay_ms
                duties.schedule_retry(proc, due, action.invocation_id)
        elif isinstance(action, InvocationEnded):
            self.invoker.ended(action.invocation_id)
            invocation_log.event(action.outcome, action.invocation_id)
        elif isinstance(action, Invoked):
            invocation_log.event(
                "invoked", action.invocation_id, "%s, %s", action.target, action.status
            )
        elif isinstance(action, Deliver):
            self.outbox.deliver(action)
        elif isinstance(action, RegisterTimer):
            duties.arm(proc, action)
        elif isinstance(action, TrimLog):
            if self.recovery is not None:
                self.recovery.trim(proc.partition, action)
        elif isinstance(action, AnswerQuery):
            if self.queries is not None:
                self.queries.submit(proc.partition, proc.store.snapshot(), action.query)
        elif isinstance(action, SweepAgain):
            proc.last_purge = float("-inf")  # more expired invocations: the next pass sweeps

    # -- leadership ---------------------------------------------------------------------------

    def take_over(self, proc: PartitionProcessor) -> None:
        """What a new leader does first: start what runs, arm timers, deliver the outbox."""
        if not self.lease.current():
            self.step_down("its lease lapsed while it claimed the partition")
            return
        epoch = proc.epoch
        self.metrics.leading(proc.partition, epoch)
        for start in state_machine.running_invocations(proc.store):
            self.invoker.start(proc.partition, epoch, start)
        duties.arm_all(proc)
        proc.retries = []
        proc.redeliveries.clear()
        self.outbox.redeliver(proc, self.clock.monotonic())

    def stop_leading(self, proc: PartitionProcessor) -> None:
        """What leading took: its handlers, its armed timers and retries, its gauges."""
        self.invoker.release(proc.partition)
        self.metrics.not_leading(proc.partition)
        proc.timers = []
        proc.retries = []
        if self.fence is not None and proc.partition in self.processors:
            # Still owned: its producer is made anew before the next claim, which settles a
            # transaction still open from the epoch it left; without it that commit could land
            # after the claim, its entry be fenced, and the replay publish the record again
            # (found by the simulator, seed 1820).
            self.fence.release(proc.partition)
            self._unfenced.add(proc.partition)

    def step_down(self, why: str) -> None:
        """Stops leading every partition (they stay owned); each is claimed again, with a new
        epoch, once the lease is current again (see :meth:`housekeeping`)."""
        led = [p for p, proc in self.processors.items() if proc.is_leader]
        for partition in led:
            proc = self.processors[partition]
            proc.is_leader = False
            proc.announced_at = None
            self.stop_leading(proc)
        if led:
            log.warning("stepping down from partitions %s: %s", sorted(led), why)

    def drop(self, partition: int) -> PartitionProcessor | None:
        """The partition is no longer this process's: its handlers stop; returns its processor
        (the caller closes it with whatever else it kept for the partition)."""
        proc = self.processors.pop(partition, None)
        if proc is None:
            return None
        if proc.is_leader:
            self.metrics.not_leading(partition)
        self.invoker.release(partition)
        if self.fence is not None:
            self.fence.release(partition)
        self._unfenced.discard(partition)
        return proc

    def open_fence(self, partition: int, member: bool) -> None:
        """Fences the previous publish producers of a partition this process opens.

        ``member``: the group coordinator just gave it the partition, so this process owns it.
        Otherwise only a current lease says so: a worker cut off from the coordinator that
        reopens a partition after a trim must not fence the producer of the partition's new
        owner (found by the simulator, seed 154: the owner's publishes failed until a takeover
        that never came); it fences once its lease is current again, before it may claim.
        """
        if self.fence is None:
            return
        if member or self.lease.current():
            self.fence.prepare(partition)  # in the background, while the store opens
        else:
            self._unfenced.add(partition)

    # -- between batches ----------------------------------------------------------------------

    def restart(self, partition: int, invocation_id: str) -> None:
        """From any thread: start an invocation again from its partition's store (the invoker
        asks when an attempt's records may be lost)."""
        self._restarts.put((partition, invocation_id))

    def _restart_now(self, proc: PartitionProcessor, invocation_id: str) -> None:
        start = state_machine.start_action(proc.store, invocation_id)
        if start is not None:
            self.invoker.start(proc.partition, proc.epoch, start)

    def housekeeping(self) -> bool:
        """The duties between batches; True if it appended or started anything.

        Before anything queued is acted on, a lease that lapsed steps down from every
        partition (a worker stopped past its session leads nothing any more).
        """
        self.check_lease()
        if self._unfenced and self.fence is not None and self.lease.current():
            for partition in sorted(self._unfenced):
                self.fence.prepare(partition)
            self._unfenced.clear()
        did = self._drain_restarts()
        now_ms = self.clock.now_ms()
        now = self.clock.monotonic()
        t = self.timing
        for proc in self.processors.values():
            if proc.is_leader and proc.retries:
                for invocation_id in duties.due_retries(proc, now_ms):
                    self._restart_now(proc, invocation_id)
                    did = True
            if proc.is_leader and proc.timers:
                did = duties.fire_timers(proc, self.log, now_ms) > 0 or did
            if proc.should_announce(now, t.claim_retry_s) and self._may_claim(proc):
                proc.announced_at = now
                epoch = proc.epoch + 1
                log.debug("partition %d: claiming leadership at epoch %d", proc.partition, epoch)
                self.log.append(proc.partition, Envelope(AnnounceLeader(proc.leader_id), epoch))
                did = True
                continue
            if not proc.is_leader:
                continue
            if (
                t.redelivery_interval_s is not None
                and now - proc.last_redelivery >= t.redelivery_interval_s
            ):
                self.outbox.redeliver(proc, now)
            if self.recovery is not None:
                self.recovery.maybe_backup(proc, now)
            if t.purge_interval_s is not None and now - proc.last_purge >= t.purge_interval_s:
                proc.last_purge = now
                retention_ms = int(t.retention_s * 1000)
                self.log.append(proc.partition, Envelope(PurgeExpired(retention_ms), proc.epoch))
        return did

    def check_lease(self) -> None:
        """Steps down from every partition the moment the lease is found lapsed: call it
        before acting on anything fetched or queued."""
        if self.lease.lapsed_now():
            self.step_down("its lease lapsed (no word from the group coordinator)")

    def _may_claim(self, proc: PartitionProcessor) -> bool:
        fenced = self.fence is None or self.fence.ready(proc.partition)
        return fenced and self.lease.current()

    def _drain_restarts(self) -> bool:
        did = False
        while True:
            try:
                partition, invocation_id = self._restarts.get_nowait()
            except queue.Empty:
                return did
            proc = self.processors.get(partition)
            if proc is None or not proc.is_leader:
                continue  # whoever leads it now starts it from its own store
            self._restart_now(proc, invocation_id)
            did = True

    def next_due_ms(self) -> int | None:
        """When the next timer or retry of a led partition is due (None: nothing is)."""
        for proc in self.processors.values():
            if proc.is_leader:
                duties.forget_fired(proc)
        return duties.next_due_ms(self.processors.values())

    def poll_timeout(self) -> float:
        """How long a reader may wait for records before a duty is due."""
        return duties.poll_timeout(self.processors.values(), self.clock.now_ms())
