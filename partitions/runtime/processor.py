"""PartitionProcessor: folds one partition's log into its store and tracks its leadership.

A processor replays the partition from the offset its store has applied. Once it has caught up
with the log end it saw when the partition was assigned, it announces itself as leader with the
next epoch. It acts as leader only after reading its own announcement back as the winning one,
and stops the moment the log names another leader.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from perdure.engine import codec, schemas, state_machine
from perdure.engine.cluster import BLOCKED_NOTE
from perdure.engine.records import Action, LeadershipChanged, RecordRejected
from perdure.partitions.runtime.ports import LogRecord, RuntimeStore

log = logging.getLogger("perdure.processor")

_VERSION = str(schemas.SCHEMA_VERSION).encode()
"""The version header of the records this code reads."""


def _version_of(msg: LogRecord) -> bytes | None:
    """The record's version header (the last, if several), without a dict per record."""
    found: bytes | None = None
    for header in msg.headers() or []:
        if header[0] == schemas.VERSION_HEADER:
            value = header[1]
            found = value if isinstance(value, bytes) else None
    return found


def log_rejected(partition: int, action: RecordRejected) -> None:
    """Says that a record was rejected (every replica does: engine/rejection.py)."""
    log.error(
        "partition %d offset %d: %s record rejected, the partition goes on: %s",
        partition,
        action.offset,
        action.kind,
        action.reason,
    )


@dataclass
class Applied:
    """The outcome of applying a batch: actions for the leader, and leadership changes."""

    actions: list[Action] = field(default_factory=list)
    rejected: int = 0
    """Records rejected in this batch (engine/rejection.py), led or not."""
    became_leader: bool = False
    lost_leadership: bool = False


class PartitionProcessor:
    """The state and leadership of one owned partition.

    Args:
        partition: the log partition.
        store: its open store.
        leader_id: this assignment's identity in leader announcements (unique per assignment,
            so that a claim of an earlier assignment read during replay is not taken as ours).
        log_end: the partition's end offset when it was assigned; replay runs up to it.
        clock: the monotonic clock of intervals (the simulator's is virtual).
    """

    def __init__(
        self,
        partition: int,
        store: RuntimeStore,
        leader_id: str,
        log_end: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.partition = partition
        self._clock = clock
        self.store = store
        self.leader_id = leader_id
        self.next_offset = store.applied_offset() + 1
        self.restore_from = self.next_offset
        self.log_end = log_end
        self.is_leader = False
        self.announced_at: float | None = None
        self.displaced_at: float | None = None
        self.restored = False
        self.assigned_at = clock()
        self.last_purge = clock()
        self.last_redelivery = clock()
        self.timers: list[tuple[int, int, str, int]] = []
        """The leader's armed timers: a heap of (due ms, wake-up ms, invocation id, entry index);
        due is the wake-up time, or later when a fired timer is checked again."""
        self.retries: list[tuple[int, str]] = []
        """The leader's pending retries: a heap of (due ms, invocation id) of invocations
        whose attempt failed and whose next one waits out its back-off."""
        self.blocked: tuple[int, str] | None = None
        """The offset this partition stopped at, and why (a record it cannot apply)."""
        self.redeliveries: dict[bytes, tuple[int, float]] = {}
        """Outbox key -> (deliveries so far, monotonic time of the next one): a back-off."""
        self.fold_seconds = 0.0
        """Seconds its folds and commits took since it opened: what replaying the same records
        would take (partitions/storage/backup_policy.py)."""

    def blocked_note(self) -> str | None:
        """Why it is blocked, as readiness and the admin say it (None: it is not)."""
        if self.blocked is None:
            return None
        return f"{BLOCKED_NOTE} at offset {self.blocked[0]}: {self.blocked[1]}"

    @property
    def epoch(self) -> int:
        """The current leader epoch of the partition, as applied."""
        return state_machine.leader(self.store)[0]

    def caught_up(self) -> bool:
        """Whether replay reached the log end seen at assignment."""
        if not self.restored and self.next_offset >= self.log_end:
            self.restored = True
            replayed = self.next_offset - self.restore_from
            if replayed > 0:
                log.info(
                    "partition %d caught up: %d records replayed in %.2fs",
                    self.partition,
                    replayed,
                    self._clock() - self.assigned_at,
                )
        return self.restored

    def apply(self, messages: Sequence[LogRecord]) -> Applied:
        """Applies records in offset order, commits them with the last offset, sorts actions.

        A record whose apply raises is rejected and the partition goes on (engine/rejection.py).
        A record this worker cannot read (its version or bytes) blocks the partition: nothing
        from there on is applied or committed (so nothing is lost, DESIGN.md invariant 6), the
        worker steps down as its leader, and says so in its log and ``perdure_partitions_blocked``.
        """
        out = Applied()
        if self.blocked is not None:
            return out
        pending, stop = self._fold(messages)
        if stop is not None:
            # Nothing of the failed record may be committed: fold again up to it.
            good = [m for m in messages if (m.offset() or 0) < stop[0]]
            pending, _ = self._fold(good)
            self.blocked = stop
            log.error(
                "partition %d BLOCKED at offset %d: %s. Nothing after it is applied until a "
                "worker that can read it owns the partition.",
                self.partition,
                stop[0],
                stop[1],
            )
            if self.is_leader:
                out.lost_leadership = True
                self.is_leader = False
        self._classify(pending, out)
        return out

    def _fold(self, messages: Sequence[LogRecord]) -> tuple[list[Action], tuple[int, str] | None]:
        began = time.perf_counter()
        batch = self.store.begin()
        last = self.next_offset - 1
        pending: list[Action] = []
        for msg in messages:
            offset = msg.offset()
            if offset is None or offset < self.next_offset:
                continue  # already applied (a re-fetch after a seek)
            version = _version_of(msg)
            value = msg.value()
            if version != _VERSION or value is None:
                return pending, (offset, f"record version {version!r} is not known here")
            try:
                env = codec.decode_envelope(value, msg.timestamp()[1])
                pending.extend(state_machine.apply(env, batch, offset))
            except Exception as err:
                log.exception("partition %d offset %d cannot be read", self.partition, offset)
                return pending, (offset, f"{type(err).__name__}: {err}")
            last = offset
        if last >= self.next_offset:
            self.store.commit(batch, last)
            self.fold_seconds += time.perf_counter() - began
            self.next_offset = last + 1
        return pending, None

    def _classify(self, pending: list[Action], out: Applied) -> None:
        """Counts what the batch rejected and notes a change of leadership; the rest is the
        leader's to act on."""
        for action in pending:
            if isinstance(action, RecordRejected):
                out.rejected += 1
                log_rejected(self.partition, action)
            elif isinstance(action, LeadershipChanged):
                # Only a claim made by this assignment after it caught up is ours: one of an
                # earlier assignment of this process, read during replay, is history.
                mine = action.leader_id == self.leader_id and self.restored
                if mine and not self.is_leader:
                    out.became_leader = True
                    log.info("partition %d: leading at epoch %d", self.partition, action.epoch)
                elif not mine:
                    if self.is_leader:
                        out.lost_leadership = True
                        log.warning(
                            "partition %d: %s took over at epoch %d; stepping down",
                            self.partition,
                            action.leader_id,
                            action.epoch,
                        )
                    if self.restored:
                        # A claim made while we own the partition: back off before
                        # reclaiming, so a zombie and the rightful owner do not ping-pong.
                        self.displaced_at = self._clock()
                self.is_leader = mine
                self.announced_at = None
            elif self.is_leader:
                out.actions.append(action)

    def should_announce(self, now: float, retry_after_s: float) -> bool:
        """Whether to claim leadership now (caught up, not leading, not waiting on a claim)."""
        if self.is_leader or self.blocked is not None or not self.caught_up():
            return False
        if self.announced_at is not None and now - self.announced_at < retry_after_s:
            return False
        return not (self.displaced_at is not None and now - self.displaced_at < retry_after_s)

    def close(self) -> None:
        """Closes the store."""
        self.store.close()
