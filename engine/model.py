"""The model: targets, failures, journal entries and the status of an invocation.

Plain frozen dataclasses, shared by the engine, the workers, the ingress and the SDK. Payloads
(inputs, results, step values) are opaque bytes here: serde belongs to the SDK.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ServiceKind(StrEnum):
    """What sort of service a target is; decides how its invocations are keyed and queued."""

    SERVICE = "service"
    OBJECT = "object"
    WORKFLOW = "workflow"


class Phase(StrEnum):
    """Where an invocation is in its life."""

    RUNNING = "running"
    COMPLETED = "completed"


class EntryKind(StrEnum):
    """The kinds of journal entries; a replay must meet the same kind at the same index."""

    RUN = "run"


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

    code: int
    message: str


@dataclass(frozen=True, slots=True)
class Reply:
    """Where to send the response: a partition of the responses topic and the waiter's id."""

    partition: int
    request_id: str


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One recorded step of an invocation. Exactly one of ``value`` and ``failure`` is set."""

    kind: EntryKind
    name: str
    value: bytes | None = None
    failure: Failure | None = None


@dataclass(frozen=True, slots=True)
class InvocationStatus:
    """What a partition knows about one invocation."""

    invocation_id: str
    target: Target
    input: bytes
    phase: Phase
    created_ms: int
    retry_count: int = 0
    journal_length: int = 0
    idempotency_key: str | None = None
    waiters: tuple[Reply, ...] = field(default_factory=tuple)
    result: bytes | None = None
    failure: Failure | None = None
    completed_ms: int | None = None
    last_error: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
