"""How an SDK's answer ends an exchange: output, error or suspension (both protocol modes).

Shared by the request-response exchange (partitions/remote/invoker.py) and the bidirectional
stream (partitions/remote/stream.py): what the SDK said last decides whether the attempt
completes, fails (to be retried), goes on at once, or waits for what it awaits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol

from perdure.engine import awakeables
from perdure.engine.deployments import STATE_ENTRY
from perdure.engine.model import EntryKind, Failure, JournalEntry
from perdure.engine.records import Command, Complete, StartInvocation
from perdure.partitions.remote.commands import Answer
from perdure.partitions.remote.journal import UnsupportedCommand, replay

ABORT_S = 600.0
"""The longest one exchange may take, or a stream stay silent (Restate's abort timeout): a step
that hangs for longer fails the attempt, which is retried."""

WAITING = frozenset({EntryKind.CALL, EntryKind.SLEEP, EntryKind.GET_PROMISE})
"""Entries acknowledged only when they complete (a timer fired, a call returned)."""

Acks = list[tuple[int, asyncio.Future[JournalEntry | None]]]


class RemoteFailure(Exception):
    """An exchange with the deployment failed: the attempt is retried.

    Args:
        message: what failed.
        retry_in_ms: the delay the SDK asked for before the next attempt, if it did.
    """

    def __init__(self, message: str, retry_in_ms: int | None = None) -> None:
        super().__init__(message)
        self.retry_in_ms = retry_in_ms


class AttemptOps(Protocol):
    """What the invoker lends a remote attempt: the same journal operations handlers use."""

    def propose(self, index: int, entry: JournalEntry) -> asyncio.Future[JournalEntry | None]:
        """Appends the proposal of entry ``index``; the future resolves at its acknowledgement."""

    def acknowledged(
        self, index: int, fut: asyncio.Future[JournalEntry | None]
    ) -> Awaitable[JournalEntry | None]:
        """Waits for a proposal's acknowledgement (bounded by the invoker's watchdog)."""

    def wait_any(self, indexes: tuple[int, ...]) -> Awaitable[dict[int, JournalEntry]]:
        """Waits until one of those entries completes (or suspends the attempt)."""


async def acknowledge(journal: list[JournalEntry], acks: Acks, ops: AttemptOps) -> None:
    """Waits for each proposal that completes at once; the journal takes what was journaled."""
    for index, fut in acks:
        if journal[index].kind in WAITING:
            continue
        got = await ops.acknowledged(index, fut)
        if got is not None:
            journal[index] = got


async def conclude(
    start: StartInvocation,
    journal: list[JournalEntry],
    ops: AttemptOps,
    answer: Answer,
    acks: Acks,
    complete: bool,
) -> Command | None:
    """The attempt's outcome once the SDK's answer ended; None: exchange again.

    ``complete``: every entry the answer asked for was proposed (a run whose result never came
    is not, and nothing after it).

    Raises:
        RemoteFailure: the SDK failed the attempt, or ended it without saying how.
    """
    trailing = answer.trailing_ops if complete else []
    if answer.output is not None and complete:
        await acknowledge(journal, acks, ops)
        out = answer.output
        failure = Failure(*out.failure) if out.failure is not None else None
        return Complete(
            start.invocation_id,
            start.attempt,
            result=None if failure else out.value,
            failure=failure,
            state_ops=tuple(trailing),
        )
    if trailing and answer.suspended_on is not None:
        index = len(journal)
        marker = JournalEntry(EntryKind.RUN, STATE_ENTRY, state_ops=tuple(trailing))
        journal.append(marker)
        acks.append((index, ops.propose(index, marker)))
    waited: list[int] = []
    if answer.suspended_on is not None and complete:
        for signal in answer.signals:
            name = awakeables.entry_name(signal)
            found = next((i for i, e in enumerate(journal) if e.name == name), None)
            if found is None:
                found = len(journal)
                entry = JournalEntry(EntryKind.AWAKEABLE, name, completed=False)
                journal.append(entry)
                acks.append((found, ops.propose(found, entry)))
            waited.append(found)
    await acknowledge(journal, acks, ops)
    if answer.error is not None:
        raise RemoteFailure(f"the handler failed: {answer.error}", answer.error_retry_ms)
    if answer.suspended_on is None:
        raise RemoteFailure("the endpoint ended without an output")
    if not complete:
        return None  # exchange again at once: the SDK runs the step again
    index_of = replay(start, journal).index_of
    awaited = {index_of[c] for c in answer.suspended_on if c in index_of} | set(waited)
    waiting = tuple(sorted(awaited))
    if not waiting:
        raise UnsupportedCommand("the handler waits for a named signal")
    if any(journal[i].completed for i in waiting):
        return None
    for index, entry in (await ops.wait_any(waiting)).items():
        journal[index] = entry
    return None
