"""The JournalDriver an attempt's context drives: the SDK's way to the invoker, and which
context type each kind of handler gets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from perdure.engine.model import HandlerKind, JournalEntry, OutgoingRecord, ServiceKind
from perdure.partitions.handlers.attempts import Attempt
from perdure.sdk import (
    Context,
    InvocationAborted,
    ObjectContext,
    ObjectSharedContext,
    WorkflowContext,
    WorkflowSharedContext,
)

if TYPE_CHECKING:
    from perdure.partitions.handlers.invoker import Invoker


async def until_delivered(attempt: Attempt, timeout_s: float) -> None:
    """Until the log has taken every record the attempt appended so far.

    One it refused ends the attempt here: a record published after it would be committed with
    an entry the partition drops as out of turn, and published again by the next attempt
    (found by the simulator, seed 136).
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    while attempt.delivered < attempt.appended:
        if loop.time() > give_up:
            raise InvocationAborted()  # the watchdog restarts it from the journal
        await asyncio.sleep(0.001)
    if attempt.refused:
        raise InvocationAborted()  # it restarts from the journal (Invoker._give_up)


class AttemptDriver:
    """One attempt's :class:`~perdure.sdk.journal.JournalDriver`."""

    def __init__(self, invoker: Invoker, attempt: Attempt) -> None:
        self._invoker = invoker
        self._attempt = attempt

    async def propose(
        self, index: int, entry: JournalEntry, appended: Callable[[], None] | None = None
    ) -> JournalEntry | None:
        return await self._invoker._propose(self._attempt, index, entry, appended)

    async def completion(self, index: int) -> JournalEntry:
        return await self._invoker._completion(self._attempt, index)

    def may_act(self) -> bool:
        invoker, attempt = self._invoker, self._attempt
        return (
            invoker.lease.current() and invoker.attempts.get(attempt.start.invocation_id) is attempt
        )

    async def publish(
        self, index: int, entry: JournalEntry, record: OutgoingRecord
    ) -> JournalEntry | None:
        return await self._invoker._publish(self._attempt, index, entry, record)


CONTEXTS: dict[tuple[ServiceKind, HandlerKind], type[Context]] = {
    (ServiceKind.OBJECT, HandlerKind.EXCLUSIVE): ObjectContext,
    (ServiceKind.OBJECT, HandlerKind.SHARED): ObjectSharedContext,
    (ServiceKind.WORKFLOW, HandlerKind.WORKFLOW): WorkflowContext,
    (ServiceKind.WORKFLOW, HandlerKind.SHARED): WorkflowSharedContext,
}
