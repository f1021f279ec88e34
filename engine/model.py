"""The model: targets, failures, journal entries and the status of an invocation.

Plain frozen dataclasses, shared by the engine, the workers, the ingress and the SDK. Payloads
(inputs, results, step values) are opaque bytes here: serde belongs to the SDK.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

DEFAULT_CLUSTER = "default"
"""The name of Perdure's own Kafka cluster among those handlers publish to."""

INT32 = "avro:int"
Int32 = Annotated[int, INT32]
"""An integer the byte formats hold in 32 bits (an Avro ``int``); a plain ``int`` is a ``long``.
The schemas are derived from these types (engine/avro_records.py)."""


class ServiceKind(StrEnum):
    """What sort of service a target is; decides how its invocations are keyed and queued."""

    SERVICE = "service"
    OBJECT = "object"
    WORKFLOW = "workflow"


class Phase(StrEnum):
    """Where an invocation is in its life."""

    SCHEDULED = "scheduled"
    """A delayed invocation waiting for its start time."""
    INBOXED = "inboxed"
    """Waiting in its object key's inbox behind the exclusive invocation that runs."""
    RUNNING = "running"
    COMPLETED = "completed"


class HandlerKind(StrEnum):
    """How an invocation takes part in its key's concurrency."""

    SERVICE = ""
    EXCLUSIVE = "exclusive"
    """One at a time per object key, in arrival order."""
    SHARED = "shared"
    """Concurrent with everything; reads state only."""
    WORKFLOW = "workflow"
    """A workflow's main handler: at most one run per workflow id."""


class EntryKind(StrEnum):
    """The kinds of journal entries; a replay must meet the same kind at the same index."""

    RUN = "run"
    CALL = "call"
    SEND = "send"
    GET_PROMISE = "get_promise"
    PEEK_PROMISE = "peek_promise"
    COMPLETE_PROMISE = "complete_promise"
    AWAKEABLE = "awakeable"
    """Completed from outside (HTTP or another handler) by its awakeable id."""
    COMPLETE_AWAKEABLE = "complete_awakeable"
    CANCEL_INVOCATION = "cancel_invocation"
    SLEEP = "sleep"
    """Proposed with the duration in ms as its value; journaled with the absolute wake-up time."""
    PUBLISH = "publish"
    """A record published to a Kafka topic (its name); journaled in the same Kafka transaction as
    the record itself, so the record exists exactly when the entry does."""


class StateOpKind(StrEnum):
    """A change to an object's or workflow's state, or a read of it.

    Reads ride on the next journal entry like changes do, in order with them, so that a replay
    reads what the first attempt read (even if another invocation changed the state since)
    without a record of their own. Applying a read changes nothing.
    """

    SET = "set"
    CLEAR = "clear"
    CLEAR_ALL = "clear_all"
    READ = "read"
    """``ctx.get(name)`` read ``value`` (None: absent)."""
    READ_KEYS = "read_keys"
    """``ctx.state_keys()`` read ``value`` (a JSON list of names)."""


READ_KINDS = frozenset({StateOpKind.READ, StateOpKind.READ_KEYS})


@dataclass(frozen=True, slots=True)
class Target:
    """A handler to invoke: service, handler and, for keyed services, the key."""

    service: str
    handler: str
    key: str | None = None

    def __str__(self) -> str:
        if self.key is None:
            return f"{self.service}/{self.handler}"
        return f"{self.service}/{self.key}/{self.handler}"


@dataclass(frozen=True, slots=True)
class Failure:
    """A terminal failure: an HTTP-like status code and a message for people."""

    code: Int32
    message: str


@dataclass(frozen=True, slots=True)
class Reply:
    """Where to send the response: a partition of the responses topic and the waiter's id."""

    partition: Int32
    request_id: str


@dataclass(frozen=True, slots=True)
class StateOp:
    """One state change, journaled with the entry (or completion) that follows it."""

    kind: StateOpKind
    name: str = ""
    value: bytes | None = None


@dataclass(frozen=True, slots=True)
class CallSpec:
    """What a call or send entry invokes; the callee's id is fixed by the caller's journal."""

    target: Target
    handler_kind: HandlerKind
    input: bytes
    callee_id: str
    delay_ms: int = 0


@dataclass(frozen=True, slots=True)
class Caller:
    """The journal entry of another invocation that waits for this one."""

    invocation_id: str
    index: Int32


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One recorded step of an invocation.

    A completed entry has its outcome: ``value`` or ``failure``. A call or a promise read is
    journaled first and completed later, when its result arrives (``completed`` False until then).
    """

    kind: EntryKind
    name: str
    value: bytes | None = None
    failure: Failure | None = None
    state_ops: tuple[StateOp, ...] = ()
    call: CallSpec | None = None
    completed: bool = True


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """A record a handler publishes to a Kafka topic (``ctx.publish``)."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    cluster: str = DEFAULT_CLUSTER
    """The Kafka cluster by name (perdure/process/kafka_clusters.py); ``default`` is Perdure's
    own."""


@dataclass(frozen=True, slots=True)
class InvocationStatus:
    """What a partition knows about one invocation.

    Its input and the requests waiting for its outcome are stored apart (``keys.INPUT``,
    ``keys.WAITER``): this record is rewritten at every step and stays small.
    """

    invocation_id: str
    target: Target
    phase: Phase
    created_ms: int
    retry_count: Int32 = 0
    journal_length: Int32 = 0
    idempotency_key: str | None = None
    result: bytes | None = None
    failure: Failure | None = None
    completed_ms: int | None = None
    last_error: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    handler_kind: HandlerKind = HandlerKind.SERVICE
    caller: Caller | None = None
    execute_at_ms: int | None = None
    suspended_on: tuple[Int32, ...] = ()
    """Journal entries a suspended invocation waits for; empty while it runs."""
    cancel_requested: bool = False
    """Cancelled while not waiting: the next journal entry fails with the cancellation."""
