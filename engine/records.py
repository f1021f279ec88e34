"""Log records (commands), responses and the actions the state machine asks the leader to run.

Records are what the log holds; applying one to a partition's state yields actions. Only the
partition's leader executes actions; a replaying or recovering worker drops them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from perdure.engine.model import (
    Caller,
    Failure,
    HandlerKind,
    Int32,
    JournalEntry,
    Reply,
    StateOp,
    Target,
)

# ---------------------------------------------------------------------------------------------
# Records on the log topic


@dataclass(frozen=True, slots=True)
class Invoke:
    """Start an invocation (from the ingress, a subscription or another partition).

    ``reply`` names the waiter for a call; a send with an idempotency key also gets a reply
    (``accepted`` or ``previously_accepted``); a plain send has none.
    """

    invocation_id: str
    target: Target
    input: bytes
    reply: Reply | None = None
    idempotency_key: str | None = None
    send: bool = False
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    handler_kind: HandlerKind = HandlerKind.SERVICE
    caller: Caller | None = None
    delay_ms: int = 0
    """Start no earlier than this long after the record's timestamp (a delayed send)."""


@dataclass(frozen=True, slots=True)
class Attach:
    """Ask for an invocation's outcome: wait for it (``block``) or answer at once."""

    invocation_id: str
    reply: Reply
    block: bool


@dataclass(frozen=True, slots=True)
class AnnounceLeader:
    """A worker claims a partition's leadership with the epoch of the record's envelope."""

    leader_id: str


@dataclass(frozen=True, slots=True)
class ProposeEntry:
    """The leader's invoker proposes the next journal entry of an attempt."""

    invocation_id: str
    attempt: Int32
    index: Int32
    entry: JournalEntry


@dataclass(frozen=True, slots=True)
class Complete:
    """An attempt ended the invocation: a result or a terminal failure.

    ``state_ops`` are the state changes made after the last journaled entry; with those of the
    journal, they become visible when the completion is applied.
    """

    invocation_id: str
    attempt: Int32
    result: bytes | None = None
    failure: Failure | None = None
    state_ops: tuple[StateOp, ...] = ()


@dataclass(frozen=True, slots=True)
class CallResult:
    """From a callee's partition: the outcome of call entry ``index`` (or the receipt of a send)."""

    invocation_id: str
    index: Int32
    result: bytes | None = None
    failure: Failure | None = None


@dataclass(frozen=True, slots=True)
class CompleteAwakeable:
    """Resolve (``value``) or reject (``failure``) the awakeable at entry ``index``.

    From the ingress (answered on ``reply``) or from another handler's journal (answered to
    ``caller`` with a :class:`CallResult`).
    """

    invocation_id: str
    index: Int32
    value: bytes | None = None
    failure: Failure | None = None
    reply: Reply | None = None
    caller: Caller | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel an invocation (it sees a 409 at its next await and may compensate), or ``kill``
    it (it ends at once, nothing more runs). Both reach the calls it waits for."""

    invocation_id: str
    kill: bool = False
    reply: Reply | None = None
    caller: Caller | None = None


@dataclass(frozen=True, slots=True)
class TimerFired:
    """The leader's timer of journal entry ``index`` (or of a delayed start) is due."""

    invocation_id: str
    index: Int32


@dataclass(frozen=True, slots=True)
class Suspend:
    """The attempt waits for entries ``waiting_on`` and holds no task until one completes."""

    invocation_id: str
    attempt: Int32
    waiting_on: tuple[Int32, ...]


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """An attempt failed with a retryable error; the invoker retries after ``retry_in_ms``."""

    invocation_id: str
    attempt: Int32
    message: str
    retry_in_ms: int


@dataclass(frozen=True, slots=True)
class Detach:
    """Request ``request_id`` no longer waits for the invocation (its client went away)."""

    invocation_id: str
    request_id: str


@dataclass(frozen=True, slots=True)
class BackupTaken:
    """The leader wrote a backup of the partition's store as of log offset ``applied_offset``.

    The backup's chunks start at ``first_offset`` of the partition's backups topic. Once this
    record is applied, the log below the backup (less a margin) and older backups may be
    trimmed: a new owner restores from this backup and replays only what follows it.
    """

    backup_id: str
    applied_offset: int
    first_offset: int
    keys: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class PurgeExpired:
    """The leader's periodic sweep: forget completed invocations past their retention."""

    retention_ms: int


@dataclass(frozen=True, slots=True)
class Query:
    """An operator's read of the partition (engine/queries.py), answered on ``reply``.

    It goes through the log so that the answer is as of its place there: whatever an
    earlier record did (an invocation completed and its caller answered) is in it.
    ``request`` is a JSON document of :mod:`engine.queries`'s format, versioned there.
    """

    reply: Reply
    request: str


@dataclass(frozen=True, slots=True)
class SetState:
    """An operator replaces the whole state of ``service``'s key ``key`` (Restate's state edit).

    Applied only if the state's version is still ``version`` (engine/queries.py
    ``state_version``) and no exclusive invocation holds the key; answered on ``reply``.
    """

    service: str
    key: str
    version: str
    new_state: tuple[tuple[str, bytes], ...]
    reply: Reply


@dataclass(frozen=True, slots=True)
class Purge:
    """An operator forgets a completed invocation before its retention ends (Restate's
    ``DELETE /invocations/{id}?mode=purge``); answered on ``reply``."""

    invocation_id: str
    reply: Reply


@dataclass(frozen=True, slots=True)
class RetryNow:
    """An operator cuts an invocation's back-off short: its next attempt starts now."""

    invocation_id: str
    reply: Reply


Command = (
    Invoke
    | Attach
    | AnnounceLeader
    | ProposeEntry
    | Complete
    | CallResult
    | CompleteAwakeable
    | Cancel
    | TimerFired
    | Suspend
    | AttemptFailed
    | PurgeExpired
    # New kinds go at the end: this order is the Avro union's (engine/schemas.py), whose index
    # is in every record's bytes; the older kinds keep theirs and older readers read them.
    | Detach
    | BackupTaken
    | Query
    | SetState
    | Purge
    | RetryNow
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A log record: the command plus who wrote it.

    ``epoch`` is the writer's leader epoch; 0 means a writer outside the partition (the ingress),
    whose records are never fenced. ``origin`` names a writer that the epoch does not: a worker
    writing to a partition it does not lead (a delivery between partitions). A leader's records
    leave it empty: their epoch names the claim (the ``AnnounceLeader`` of that epoch), and the
    20 bytes of a worker id were a tenth of the log. ``timestamp_ms`` comes from the Kafka
    record, so that the state machine never reads a clock.
    """

    command: Command
    epoch: int = 0
    origin: str = ""
    timestamp_ms: int = 0


# ---------------------------------------------------------------------------------------------
# Records on the responses topic


class ResponseStatus(StrEnum):
    """What a response tells its waiter."""

    OK = "ok"
    FAILED = "failed"
    ACCEPTED = "accepted"
    PREVIOUSLY_ACCEPTED = "previously_accepted"
    NOT_READY = "not_ready"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class Response:
    """An answer to a waiter (an ingress request)."""

    request_id: str
    invocation_id: str
    status: ResponseStatus
    result: bytes | None = None
    failure: Failure | None = None


# ---------------------------------------------------------------------------------------------
# Actions


@dataclass(frozen=True, slots=True)
class StartInvocation:
    """Run (or re-run, replaying ``journal``) an invocation's handler as attempt ``attempt``."""

    invocation_id: str
    target: Target
    input: bytes
    journal: tuple[JournalEntry, ...]
    attempt: int
    headers: tuple[tuple[str, str], ...] = ()
    handler_kind: HandlerKind = HandlerKind.SERVICE
    state: tuple[tuple[str, bytes], ...] = ()
    """The key's state as it was before this invocation (keyed targets only)."""
    notified: tuple[tuple[int, int], ...] = ()
    """(entry index, journal length then) of each pending entry's completion, in the order
    they came (engine/notifications.py): a replay tells the handler in that order."""


@dataclass(frozen=True, slots=True)
class AckEntry:
    """Journal entry ``index`` of the attempt is durable and complete: the handler may go on."""

    invocation_id: str
    attempt: int
    index: int
    entry: JournalEntry | None = None
    """The entry as journaled. The handler goes on with this one, not with what it proposed:
    after a restart in the same attempt, an earlier proposal of the index may have won."""


@dataclass(frozen=True, slots=True)
class RegisterTimer:
    """Append :class:`TimerFired` for entry ``index`` at ``wake_at_ms`` (wall clock, ms)."""

    wake_at_ms: int
    invocation_id: str
    index: int


@dataclass(frozen=True, slots=True)
class Deliver:
    """Append ``command`` to the partition that owns invocation ``route_id``."""

    route_id: str
    command: Command


@dataclass(frozen=True, slots=True)
class ScheduleRetry:
    """Start attempt ``attempt`` of the invocation after ``delay_ms``."""

    invocation_id: str
    attempt: int
    delay_ms: int


@dataclass(frozen=True, slots=True)
class SendResponse:
    """Send ``response`` to the responses-topic partition of ``reply``."""

    reply: Reply
    response: Response


@dataclass(frozen=True, slots=True)
class InvocationEnded:
    """The invocation completed; drop whatever the invoker still holds for it."""

    invocation_id: str
    outcome: str = "completed"
    """How it ended, in operators' words: completed, failed, cancelled or killed."""


@dataclass(frozen=True, slots=True)
class Invoked:
    """A new invocation is recorded (the leader logs it; nothing to carry out)."""

    invocation_id: str
    target: Target
    status: str
    """Where it stands at once: running, pending (behind its key) or scheduled."""


@dataclass(frozen=True, slots=True)
class LeadershipChanged:
    """The partition's leader is now ``leader_id`` at ``epoch``."""

    leader_id: str
    epoch: int


@dataclass(frozen=True, slots=True)
class SweepAgain:
    """The retention sweep stopped at its batch limit: the leader sweeps again soon."""


@dataclass(frozen=True, slots=True)
class TrimLog:
    """A backup up to log offset ``applied_offset`` is recorded: trim what it makes redundant.

    The leader deletes the log below ``applied_offset + 1`` (less its safety margin) and the
    backups topic below ``backup_first_offset`` (older backups).
    """

    applied_offset: int
    backup_first_offset: int


@dataclass(frozen=True, slots=True)
class AnswerQuery:
    """Answer ``query`` from the state as applied up to it (the leader reads, nobody writes)."""

    query: Query


@dataclass(frozen=True, slots=True)
class RecordRejected:
    """A record whose apply raised was rejected (engine/rejection.py): every replica says so."""

    offset: int
    kind: str
    reason: str


Action = (
    StartInvocation
    | AckEntry
    | ScheduleRetry
    | SendResponse
    | InvocationEnded
    | Invoked
    | LeadershipChanged
    | Deliver
    | RegisterTimer
    | SweepAgain
    | TrimLog
    | AnswerQuery
    | RecordRejected
)
