"""RemoteOps: the journal operations the invoker lends one attempt of a deployment's handler.

The remote invoker (partitions/remote/invoker.py) drives a Restate SDK over HTTP; what it
journals goes through these, the same proposals, acknowledgements and suspension as an
in-process handler's (partitions/remote/answer.py ``AttemptOps``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from perdure.engine.model import JournalEntry
from perdure.engine.records import Command, ProposeEntry
from perdure.partitions.handlers.attempts import Attempt, Suspended, acknowledged

Append = Callable[[Attempt, Command], object]
"""Appends a record of the attempt to the log (the invoker's ``_append``)."""


class RemoteOps:
    """Proposals, acknowledgements and waits of one remote attempt.

    Args:
        attempt: the attempt.
        append: how its records reach the log.
        draining: whether the worker is stopping (a wait then suspends at once).
        suspend_after_s: how long a wait keeps the attempt before it suspends.
    """

    def __init__(
        self,
        attempt: Attempt,
        append: Append,
        draining: Callable[[], bool],
        suspend_after_s: float,
    ) -> None:
        self._attempt = attempt
        self._append = append
        self._draining = draining
        self._suspend_after_s = suspend_after_s

    def propose(self, index: int, entry: JournalEntry) -> asyncio.Future[JournalEntry | None]:
        attempt = self._attempt
        acked: asyncio.Future[JournalEntry | None] = asyncio.get_running_loop().create_future()
        attempt.pending[index] = acked
        start = attempt.start
        self._append(attempt, ProposeEntry(start.invocation_id, start.attempt, index, entry))
        return acked

    async def acknowledged(
        self, index: int, fut: asyncio.Future[JournalEntry | None]
    ) -> JournalEntry | None:
        loop = asyncio.get_running_loop()
        return await acknowledged(self._attempt, index, fut, loop.time())

    async def wait_any(self, indexes: tuple[int, ...]) -> dict[int, JournalEntry]:
        attempt = self._attempt
        waits: dict[int, asyncio.Future[JournalEntry | None]] = {}
        for index in indexes:
            early = attempt.early.pop(index, None)
            if early is not None:
                return {index: early}
            fut = attempt.pending.get(index)
            if fut is None:
                fut = attempt.pending[index] = asyncio.get_running_loop().create_future()
            waits[index] = fut
        if self._draining():
            raise Suspended(indexes[0])
        attempt.waiting = True
        try:
            await asyncio.wait(
                waits.values(), timeout=self._suspend_after_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            attempt.waiting = False
        done = {i: f.result() for i, f in waits.items() if f.done()}
        if not done:
            raise Suspended(indexes[0])
        return {i: e for i, e in done.items() if e is not None}
