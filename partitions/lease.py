"""Lease: whether this worker may still act as the leader of the partitions it holds.

Fencing keeps a deposed leader's records out of the log, but not its effects out of the world:
a worker stopped (SIGSTOP, a long GC-like stall, a partitioned network) past the group's session
timeout wakes with callbacks queued, records prefetched and handlers between two steps, and
would run steps its successor has already journaled. The lease closes that gap (DESIGN.md
invariant 8): a leader starts no attempt, runs no step, acknowledges no entry and fires no
timer unless its lease is current at that moment, and a worker whose lease lapsed steps down
from every partition before it runs anything it had queued.

The lease is renewed only by an answer of the group coordinator that proves this member is
still in the group's current generation: a successful offset commit (the coordinator checks
the member id and the generation; a member it evicted gets ``UNKNOWN_MEMBER_ID`` or
``ILLEGAL_GENERATION``). It counts from when the commit was *sent*, never from when its answer
was read, and lasts the session timeout less one heartbeat interval and a margin: the
coordinator cannot have evicted a member that it heard from within that time, so no other
worker can lead the partition yet. Time is the monotonic clock, which keeps counting while the
process is stopped: a worker resumed after a long SIGSTOP finds its lease lapsed at once.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

log = logging.getLogger("perdure.lease")

NOTE_BYTES = 1000
"""The most of a partition's note a commit carries (brokers keep 4096 bytes by default)."""
RENEW_INTERVAL_S = 0.5
"""How often a worker asks the coordinator to renew its lease (an asynchronous offset commit)."""


class Lease:
    """A leader's right to act, renewed by the group coordinator's answers.

    Read from any thread (:meth:`current` reads one float); renewed on the thread that polls
    the consumer.

    Args:
        length_s: how long one renewal lasts, from when its request was sent.
        clock: a monotonic clock (tests may pass their own).
    """

    def __init__(self, length_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.length_s = length_s
        self._clock = clock
        self._until = -math.inf
        self._sent: deque[float] = deque()
        self._floor = -math.inf
        """Renewals sent before this moment count no more (the member left the group)."""
        self._lapsed_logged = True

    @classmethod
    def for_session(cls, session_timeout_ms: int, heartbeat_interval_ms: int) -> Lease:
        """The lease of a group member: the session timeout less a heartbeat and a margin."""
        session_s = session_timeout_ms / 1000
        margin_s = max(0.5, session_s / 10)
        return cls(max(session_s - heartbeat_interval_ms / 1000 - margin_s, 0.5))

    @classmethod
    def always(cls) -> Lease:
        """The lease of a process that is its partition's only possible leader (no group:
        ``perdure dev --embedded``, the TestRuntime): always current."""
        return cls(math.inf)

    def current(self) -> bool:
        """Whether this worker may act as a leader now."""
        return self.length_s == math.inf or self._clock() < self._until

    def lapsed_now(self) -> bool:
        """True once per lapse: the moment to step down from every partition and say why."""
        if self.current():
            self._lapsed_logged = False
            return False
        if self._lapsed_logged:
            return False
        self._lapsed_logged = True
        return True

    def asked(self) -> None:
        """A renewal was sent now (its answer comes to :meth:`answered`, in order)."""
        self._sent.append(self._clock())

    def answered(self, ok: bool) -> None:
        """The coordinator answered the oldest renewal still open: ``ok`` if it took it."""
        if not self._sent:
            return
        sent_at = self._sent.popleft()
        if ok and sent_at > self._floor:
            self._until = max(self._until, sent_at + self.length_s)

    def lapse(self) -> None:
        """Ends the lease now (this member left the group, or lost its partitions)."""
        self._until = -math.inf
        self._floor = self._clock()


class LeaseKeeper:
    """Renews a worker's :class:`Lease` through its consumer (on the thread that polls it).

    The consumer's ``on_commit`` must be :meth:`answered`.
    """

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self._asked_at = -math.inf

    def renew_soon(self) -> None:
        """Renew at the next :meth:`renew`, whenever the last was (new partitions to claim)."""
        self._asked_at = -math.inf

    def due(self, now: float) -> bool:
        """Whether a renewal is due (every :data:`RENEW_INTERVAL_S`)."""
        return now - self._asked_at >= RENEW_INTERVAL_S

    def renew(
        self,
        consumer: Consumer,
        topic: str,
        offsets: dict[int, int],
        now: float,
        notes: dict[int, str] | None = None,
    ) -> None:
        """Every :data:`RENEW_INTERVAL_S`: an asynchronous commit of the applied ``offsets``
        (partition -> next offset), which the coordinator takes only from a member of its
        current generation. Nothing to lead, nothing to renew.

        ``notes`` ride along as each partition's commit metadata (a blocked partition's why):
        the admin reads them from Kafka (``GET /cluster``), never from the worker.
        """
        if not offsets or not self.due(now):
            return
        self._asked_at = now
        self.lease.asked()
        notes = notes or {}
        commits = [
            TopicPartition(topic, p, o, metadata=notes.get(p, "")[:NOTE_BYTES])
            for p, o in offsets.items()
        ]
        try:
            consumer.commit(offsets=commits, asynchronous=True)
        except KafkaException as err:
            self.lease.answered(False)
            log.debug("lease renewal not sent: %s", err)

    def answered(self, err: KafkaError | None, parts: list[TopicPartition]) -> None:
        """The consumer's ``on_commit``: the coordinator's answer to the oldest renewal."""
        ok = err is None and all(tp.error is None for tp in parts)
        if not ok:
            log.debug("lease renewal refused: %s", err or [tp.error for tp in parts if tp.error])
        self.lease.answered(ok)
