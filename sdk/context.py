"""The handler context: the public API of durable steps, time, awakeables and calls.

The journal mechanics under it (replay, proposals in order, state reads) are
:class:`~perdure.sdk.journal_cursor.JournalCursor`'s.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar, overload

from perdure.engine.errors import InvalidId
from perdure.engine.ids import InvocationId, awakeable_id
from perdure.engine.limits import failure_code
from perdure.engine.model import (
    EntryKind,
    Failure,
    JournalEntry,
)
from perdure.sdk import clock, serde
from perdure.sdk.errors import InvocationAborted, TerminalError, checked_delay_ms
from perdure.sdk.handler_calls import HandlerCalls
from perdure.sdk.journal_cursor import Lazy, current_step, fail_future, return_type
from perdure.sdk.options import RunOptions
from perdure.sdk.publishing import outgoing_record

T = TypeVar("T")


class Context(HandlerCalls):
    """The context of a service handler.

    Attributes:
        invocation_id: the id of this invocation (``inv_...``).
    """

    def headers(self) -> dict[str, str]:
        """The headers the invocation was started with."""
        return dict(self._headers)

    def step_idempotency_key(self) -> str:
        """A key unique to the running step, stable across its retries: ``<invocation id>:<n>``.

        Call it inside a function run by :meth:`run` and pass it to downstream APIs that
        deduplicate (payment providers, ...), so that a step retried after a crash is not
        applied twice there.
        """
        key = current_step.get()
        if key is None:
            raise TerminalError("step_idempotency_key() is only valid inside ctx.run(...)")
        return key

    @overload
    async def run(
        self,
        name: str,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        options: RunOptions | None = None,
        **kwargs: Any,
    ) -> T: ...

    @overload
    async def run(
        self,
        name: str,
        fn: Callable[..., T],
        *args: Any,
        options: RunOptions | None = None,
        **kwargs: Any,
    ) -> T: ...

    async def run(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        options: RunOptions | None = None,
        **kwargs: Any,
    ) -> Any:
        """Runs ``fn(*args, **kwargs)`` once, durably, and returns its result.

        A sync ``fn`` runs in a thread, off the event loop. The result must be JSON-serializable
        (or of the type ``fn`` is annotated to return). Once journaled, the step never runs
        again: a replay returns the recorded result, or raises the recorded terminal failure.

        Args:
            name: the step's name; a replay checks it against the journal.
            fn: the action.
            options: retries of the action in place (see :class:`RunOptions`).

        Raises:
            TerminalError: the action raised one, or exhausted ``options.max_attempts``.
        """
        index = self._take_index()
        result_type = return_type(fn)
        recorded = self._replayed(index, EntryKind.RUN, name)
        if recorded is not None:
            return self._outcome(recorded, result_type)
        mine = self._proposed[index] = asyncio.get_running_loop().create_future()
        try:
            entry = await self._execute(index, name, fn, args, kwargs, options, result_type)
            entry = await self._propose(index, entry)
        except BaseException as err:
            fail_future(mine, err)
            raise
        return self._outcome(entry, result_type)

    async def publish(
        self,
        topic: str,
        value: Any,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str | bytes] | None = None,
        cluster: str = "default",
    ) -> None:
        """Publishes a record to a Kafka topic, as a durable step.

        The record and the journal entry that records it are written in one Kafka transaction:
        a ``read_committed`` reader sees the record exactly once, whatever crashes (a replay
        finds the entry and publishes nothing). Returns once both are durable. A record for
        another cluster goes through Perdure's outbox and is forwarded, exactly once too, by
        the admin process (``perdure admin``), which must run for it to arrive.

        Args:
            topic: the topic (it must exist, or the broker must create topics on use).
            value: ``bytes`` as they are; anything else as JSON (a ``str`` too).
            key: the record's key (``str`` as UTF-8), which picks its partition.
            headers: the record's headers; ``perdure.publish.id`` (``<invocation id>:<entry
                index>``) is added to them.
            cluster: a Kafka cluster by name (``PERDURE_KAFKA_CLUSTERS``); ``default`` is
                Perdure's own.

        Raises:
            TerminalError: the topic name, the value or the cluster is not valid.
        """
        # Checked before the index is taken: a refused record leaves no hole in the journal.
        publish_id = f"{self.invocation_id}:{self._next_index}"
        record = outgoing_record(topic, value, key, headers, publish_id, cluster)
        index = self._take_index()
        if self._replayed(index, EntryKind.PUBLISH, topic) is not None:
            return
        mine = self._proposed[index] = asyncio.get_running_loop().create_future()
        try:
            await self._propose(index, JournalEntry(EntryKind.PUBLISH, topic), record)
        except BaseException as err:
            fail_future(mine, err)
            raise

    # -- time and randomness ------------------------------------------------------------------

    async def sleep(self, delay: timedelta, name: str = "sleep") -> None:
        """Waits ``delay`` durably: the wake-up time is journaled and kept by the partition.

        A worker crash or restart does not reset it; a long sleep holds no task while it waits
        (the invocation suspends and resumes when the timer fires).
        """
        ms = checked_delay_ms(max(int(delay.total_seconds() * 1000), 0), "a sleep")
        entry = JournalEntry(EntryKind.SLEEP, name, value=str(ms).encode(), completed=False)
        done = await self._record(EntryKind.SLEEP, name, entry)
        if done.failure is not None:  # cancelled while it slept
            raise TerminalError(done.failure.message, done.failure.code)

    def random(self) -> random.Random:
        """A random generator seeded by the invocation: the same numbers on every replay."""
        if self._random is None:
            seed = hashlib.blake2b(self.invocation_id.encode(), digest_size=8).digest()
            self._random = random.Random(int.from_bytes(seed, "big"))
        return self._random

    def uuid(self) -> uuid.UUID:
        """A UUID (version 4) drawn from :meth:`random`: the same on every replay."""
        return uuid.UUID(int=self.random().getrandbits(128), version=4)

    async def time(self) -> float:
        """The current time (seconds since the epoch), journaled: a replay returns the same."""
        return await self.run("time", _now)

    # -- combinators --------------------------------------------------------------------------

    async def select(self, **branches: Awaitable[Any]) -> tuple[str, Any]:
        """Waits for the first of several durable futures; returns ``(name, value)``.

        The winner is journaled, so a replay picks the same one even if the others completed
        meanwhile. A winner that failed raises its error. Example::

            _, done = ctx.awakeable()
            which, value = await ctx.select(done=done, timeout=ctx.sleep(timedelta(minutes=5)))

        ``asyncio.gather`` over durable futures is deterministic as it is (every result comes
        from the journal); ``select`` is for a race, where the order of completions matters.
        """
        if not branches:
            raise TerminalError("select() needs at least one future")
        tasks = {name: asyncio.ensure_future(aw) for name, aw in branches.items()}
        try:
            await asyncio.sleep(0)  # every branch takes its journal index, in argument order
            index = self._take_index()
            recorded = self._replayed(index, EntryKind.RUN, "select")
            if recorded is not None:
                winner = serde.decode(recorded.value or b"null", str)
            else:
                winner = await self._first(tasks)
                entry = JournalEntry(EntryKind.RUN, "select", value=serde.encode(winner))
                await self._record(EntryKind.RUN, "select", entry, index)
            return winner, await tasks[winner]
        finally:
            for task in tasks.values():
                if not task.done():
                    task.cancel()

    async def with_timeout(self, future: Awaitable[T], after: timedelta) -> T:
        """The value of ``future``, or a 408 :class:`TerminalError` after ``after`` (durable)."""
        which, value = await self.select(value=future, timeout=self.sleep(after, "timeout"))
        if which == "timeout":
            raise TerminalError(f"timed out after {after}", 408)
        return value  # type: ignore[no-any-return]

    @staticmethod
    async def _first(tasks: Mapping[str, asyncio.Future[Any]]) -> str:
        pending = set(tasks.values())
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for name, task in tasks.items():
                if task in done:
                    err = task.exception() if not task.cancelled() else None
                    if isinstance(err, InvocationAborted):
                        raise err  # the attempt suspends (or stops): a replay decides later
                    return name
        raise TerminalError("select(): no branch completed")

    # -- awakeables ---------------------------------------------------------------------------

    def awakeable(self, type_hint: Any = None) -> tuple[str, Awaitable[Any]]:
        """An id that anything outside can complete, and the future of its value.

        Give the id to another system; it resolves it with ``POST
        /restate/awakeables/{id}/resolve`` (a JSON body) or ``/reject``, or a handler does with
        :meth:`resolve_awakeable`. Awaiting the future suspends the invocation until then, and
        raises :class:`TerminalError` if it was rejected.
        """
        index = self._take_index()
        awakeable = awakeable_id(self.invocation_id, index)
        recorded = self._replayed(index, EntryKind.AWAKEABLE, "awakeable")
        proposal: asyncio.Task[JournalEntry] | None = None
        if recorded is None:
            # Proposed at once, so that it exists before anyone can complete it.
            mine = self._proposed[index] = asyncio.get_running_loop().create_future()
            entry = JournalEntry(EntryKind.AWAKEABLE, "awakeable", completed=False)

            async def propose() -> JournalEntry:
                try:
                    return await self._propose(index, entry)
                except BaseException as err:
                    fail_future(mine, err)
                    raise

            proposal = asyncio.get_running_loop().create_task(propose())

        async def value() -> Any:
            done = recorded
            if proposal is not None:
                done = await proposal
            assert done is not None
            if not done.completed:
                done = await self._driver.completion(index)
            return self._outcome(done, type_hint)

        return awakeable, Lazy(value)

    async def resolve_awakeable(self, awakeable: str, value: Any) -> None:
        """Resolves another invocation's awakeable; a second completion raises (409)."""
        entry = JournalEntry(
            EntryKind.COMPLETE_AWAKEABLE, awakeable, value=serde.encode(value), completed=False
        )
        await self._complete_awakeable(entry)

    async def reject_awakeable(self, awakeable: str, reason: str, status_code: int = 500) -> None:
        """Rejects another invocation's awakeable: its waiter gets a :class:`TerminalError`."""
        failure = Failure(*failure_code(status_code, reason))
        entry = JournalEntry(
            EntryKind.COMPLETE_AWAKEABLE, awakeable, failure=failure, completed=False
        )
        await self._complete_awakeable(entry)

    async def _complete_awakeable(self, entry: JournalEntry) -> None:
        done = await self._record(EntryKind.COMPLETE_AWAKEABLE, entry.name, entry)
        if done.failure is not None and done.value is None:
            raise TerminalError(done.failure.message, done.failure.code)

    async def cancel_invocation(self, invocation_id: str) -> None:
        """Cancels another invocation: it gets a 409 :class:`TerminalError` at its next await
        and may compensate; the calls it waits for are cancelled too.

        Raises:
            TerminalError: 404 if the invocation is unknown, 409 if it already completed.
        """
        try:
            InvocationId.parse(invocation_id)
        except InvalidId as err:
            raise TerminalError(f"cancel_invocation: {err}", 400) from None
        entry = JournalEntry(EntryKind.CANCEL_INVOCATION, invocation_id, completed=False)
        done = await self._record(EntryKind.CANCEL_INVOCATION, invocation_id, entry)
        if done.failure is not None:
            raise TerminalError(done.failure.message, done.failure.code)


def _now() -> float:
    return clock.now()
