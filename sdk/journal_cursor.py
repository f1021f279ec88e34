"""An invocation's place in its journal: what a replay finds there, and what is proposed new.

Each durable action takes the next journal index. When the journal already holds that index
(a replay after a crash or a retry) the recorded outcome is returned and nothing runs. Otherwise
the action runs, its outcome is proposed to the log, and the handler resumes only once the
partition's leader has read it back (DESIGN.md invariant 4). :class:`~perdure.sdk.Context`
is the public API over these mechanics.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import random
from collections.abc import Callable, Coroutine, Generator, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any, Generic, TypeVar, get_type_hints

from perdure.engine.model import (
    READ_KINDS,
    EntryKind,
    Failure,
    HandlerKind,
    JournalEntry,
    OutgoingRecord,
    StateOp,
    StateOpKind,
    Target,
)
from perdure.sdk import serde
from perdure.sdk.errors import InvocationAborted, TerminalError
from perdure.sdk.journal import JournalDriver, JournalMismatchError
from perdure.sdk.options import RetryPolicy, RunOptions

T = TypeVar("T")

current_step: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "perdure_step", default=None
)


def return_type(fn: Callable[..., Any]) -> Any:
    # A step is most often a lambda or closure: a new object each call, without annotations.
    # Caching those by object only filled the cache with them; they need no lookup at all.
    if not getattr(fn, "__annotations__", None):
        return None
    return _annotated_return_type(fn)


@lru_cache(maxsize=1024)
def _annotated_return_type(fn: Callable[..., Any]) -> Any:
    try:
        return get_type_hints(fn).get("return")
    except Exception:
        return None


class JournalCursor:
    """The journal mechanics under a handler's context: replay, propose in order, state reads."""

    def __init__(
        self,
        invocation_id: str,
        journal: Sequence[JournalEntry],
        driver: JournalDriver,
        headers: dict[str, str] | None = None,
        attempt: int = 0,
        *,
        target: Target | None = None,
        handler_kind: HandlerKind = HandlerKind.SERVICE,
        state: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        self.invocation_id = invocation_id
        self._replay = list(journal)
        self._driver = driver
        self._next_index = 0
        self._headers = dict(headers or {})
        self._attempt = attempt
        self._target = target
        self._handler_kind = handler_kind
        self._state: dict[str, bytes] = dict(state)
        self._pending_ops: list[StateOp] = []
        self._random: random.Random | None = None
        # One future per entry this attempt will propose: entry n is proposed only after n-1.
        self._proposed: dict[int, asyncio.Future[None]] = {}
        # Reads recorded with replayed entry n that the replay has not met again yet.
        self._replay_reads: dict[int, list[StateOp]] = {}

    async def _record(
        self, kind: EntryKind, name: str, entry: JournalEntry, index: int | None = None
    ) -> JournalEntry:
        """Journals ``entry`` (or finds it on replay) and returns it completed."""
        index = self._take_index() if index is None else index
        recorded = self._replayed(index, kind, name)
        if recorded is not None:
            if recorded.completed:
                return recorded
            return await self._driver.completion(index)
        mine = self._proposed[index] = asyncio.get_running_loop().create_future()
        try:
            return await self._propose(index, entry)
        except BaseException as err:
            fail_future(mine, err)
            raise

    async def _execute(
        self,
        index: int,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: RunOptions | None,
        result_type: Any,
    ) -> JournalEntry:

        policy = options.policy() if options is not None else None
        step_key = f"{self.invocation_id}:{index}"
        attempt = 0
        while True:
            attempt += 1
            if not self._driver.may_act():
                # A deposed leader (stopped past its session, say) resumes here: the step may
                # be journaled by the new leader already, and must not run again.
                raise InvocationAborted()
            try:
                value = await self._call(step_key, fn, args, kwargs)
                entry = JournalEntry(EntryKind.RUN, name, value=serde.encode(value, result_type))
                break
            except TerminalError as err:
                entry = JournalEntry(
                    EntryKind.RUN, name, failure=Failure(err.status_code, err.message)
                )
                break
            except Exception as err:
                if policy is None:
                    raise
                if attempt >= policy.max_attempts:
                    entry = JournalEntry(
                        EntryKind.RUN,
                        name,
                        failure=Failure(
                            500, f"step {name!r} failed after {attempt} attempts: {err!r}"
                        ),
                    )
                    break
                await asyncio.sleep(_delay(policy, attempt))
        return entry

    def _take_index(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    def _replayed(self, index: int, kind: EntryKind, name: str) -> JournalEntry | None:
        if index >= len(self._replay):
            return None
        entry = self._replay[index]
        if entry.kind is not kind or entry.name != name:
            raise JournalMismatchError(index, entry, kind, name)
        self._pending_ops.clear()  # they were journaled with this entry
        return entry

    @staticmethod
    def _outcome(entry: JournalEntry, result_type: Any) -> Any:
        if entry.failure is not None:
            raise TerminalError(entry.failure.message, entry.failure.code)
        return serde.decode(entry.value or b"null", result_type, what="a journaled result")

    @staticmethod
    async def _call(
        step_key: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        token = current_step.set(step_key)
        try:
            if inspect.iscoroutinefunction(fn):
                return await fn(*args, **kwargs)
            # to_thread copies the context, so step_idempotency_key() works in the thread too.
            result = await asyncio.to_thread(fn, *args, **kwargs)
            if inspect.isawaitable(result):
                return await result
            return result
        finally:
            current_step.reset(token)

    async def _propose(
        self, index: int, entry: JournalEntry, record: OutgoingRecord | None = None
    ) -> JournalEntry:
        # Entries must reach the log in index order even when steps finish out of order.
        previous = self._proposed.get(index - 1)
        if previous is not None:
            await asyncio.shield(previous)
        if self._pending_ops:
            # State changes made since the last entry are journaled with this one.
            entry = replace(entry, state_ops=tuple(self._pending_ops))
            self._pending_ops.clear()
        mine = self._proposed[index]

        def appended() -> None:
            # The next entry may go as soon as this one is in the log's order: a sleep or a
            # call completes much later, and waiting for that held back every entry after it
            # (a select between an awakeable and a timeout suspended instead of going on).
            if not mine.done():
                mine.set_result(None)

        if record is None:
            completed = await self._driver.propose(index, entry, appended)
        else:
            completed = await self._driver.publish(index, entry, record)
        appended()
        return entry if completed is None else completed

    def _read(self, kind: StateOpKind, name: str, value: bytes | None) -> bytes | None:
        """A state read: the one the journal recorded here, or ``value`` (recorded now).

        Reads ride on the next journal entry, in order with the changes; a replay returns what
        the first attempt read, so the handler takes the same branch.
        """
        index = self._next_index
        if index < len(self._replay):
            recorded = self._replay_reads.get(index)
            if recorded is None:
                ops = self._replay[index].state_ops
                recorded = self._replay_reads[index] = [op for op in ops if op.kind in READ_KINDS]
            if not recorded or recorded[0].kind is not kind or recorded[0].name != name:
                what = f"{recorded[0].kind.value} {recorded[0].name!r}" if recorded else "no read"
                raise TerminalError(
                    f"journal mismatch before entry {index}: the journal has {what} but the "
                    f"handler now does {kind.value} {name!r}",
                    500,
                )
            return recorded.pop(0).value
        self._pending_ops.append(StateOp(kind, name, value))
        return value

    def take_pending_state_ops(self) -> tuple[StateOp, ...]:
        """State changes not journaled yet; the worker puts them in the completion record.

        Reads are left out: after the completion nothing replays them.
        """
        ops = tuple(op for op in self._pending_ops if op.kind not in READ_KINDS)
        self._pending_ops.clear()
        return ops


def fail_future(fut: asyncio.Future[None], err: BaseException) -> None:
    if not fut.done():
        fut.set_exception(err)
        fut.exception()  # retrieved: later entries re-raise it


def _delay(policy: RetryPolicy, attempt: int) -> float:
    return policy.delay_after(attempt).total_seconds()


class Lazy(Generic[T]):
    """An awaitable whose coroutine is made when it is first awaited: an awakeable's value that
    its handler never awaits (it was cancelled first, or chose another branch) leaves no
    "coroutine was never awaited" warning behind."""

    __slots__ = ("_coroutine", "_make")

    def __init__(self, make: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._make = make
        self._coroutine: Coroutine[Any, Any, T] | None = None

    def __await__(self) -> Generator[Any, None, T]:
        if self._coroutine is None:
            self._coroutine = self._make()
        return self._coroutine.__await__()
