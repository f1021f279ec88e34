"""What the invoker keeps of one running attempt, shared with the remote attempt's operations.

An :class:`Attempt` is one try of an invocation on this worker: the futures its handler waits
on (one per journal index), what completed before anyone waited, and whether it is in a step or
waits for something outside (a timer, a call), which decides what a graceful stop and a test
runtime's clock may do with it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from perdure.engine.model import EntryKind, JournalEntry
from perdure.engine.records import StartInvocation
from perdure.sdk import InvocationAborted


@dataclass
class Attempt:
    """One attempt of an invocation, as the invoker runs it."""

    partition: int
    epoch: int
    start: StartInvocation
    pending: dict[int, asyncio.Future[JournalEntry | None]] = field(default_factory=dict)
    early: dict[int, JournalEntry] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    delayed: bool = False
    """Still waiting out its retry back-off: nothing of it has run yet."""
    parked: bool = False
    """No handler for it on this worker: it waits for a worker that has one to lead."""
    unacked: dict[int, float] = field(default_factory=dict)
    """Proposals awaiting their acknowledgement, with the loop time they were made."""
    waiting: bool = False
    """Waiting for an entry that completes later (a timer, a call): not in a step."""
    appended: int = 0
    """Records of this attempt handed to the log writer so far."""
    delivered: int = 0
    """...and of those, how many the log has taken or refused (counted on the writer's
    thread: a publish waits until the two meet, see Invoker._publish)."""
    refused: bool = False
    """The log refused one of its records (set on the writer's thread, before ``delivered``
    counts it): nothing after it may be published (see Invoker._publish)."""


class Suspended(InvocationAborted):
    """The handler waits for entry ``index`` longer than the invoker keeps a task for."""


WAITING_KINDS = frozenset(
    {
        EntryKind.CALL,
        EntryKind.SLEEP,
        EntryKind.GET_PROMISE,
        EntryKind.COMPLETE_AWAKEABLE,
        EntryKind.CANCEL_INVOCATION,
    }
)
"""Entries whose acknowledgement waits for something outside the attempt."""

COMPLETED_LATER = WAITING_KINDS | {EntryKind.AWAKEABLE}
"""Entries whose completion may come after the attempt stopped waiting (and suspended)."""


async def acknowledged(
    attempt: Attempt, index: int, acked: asyncio.Future[JournalEntry | None], since: float
) -> JournalEntry | None:
    """Waits for entry ``index``'s acknowledgement, which the invoker's watchdog bounds."""
    attempt.unacked[index] = since
    try:
        return await acked
    finally:
        attempt.unacked.pop(index, None)
