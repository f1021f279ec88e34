"""The handler context: durable steps over the invocation's journal.

Each durable action takes the next journal index. When the journal already holds that index
(a replay after a crash or a retry) the recorded outcome is returned and nothing runs. Otherwise
the action runs, its outcome is proposed to the log, and the handler resumes only once the
partition's leader has read it back (DESIGN.md invariant 4).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Any, Protocol, TypeVar, get_type_hints, overload

from engine.model import EntryKind, Failure, JournalEntry
from sdk import serde
from sdk.errors import TerminalError
from sdk.options import RetryPolicy, RunOptions

T = TypeVar("T")

_current_step: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "perdure_step", default=None
)


class JournalDriver(Protocol):
    """What the worker gives a context: the way to make an entry durable."""

    def propose(self, index: int, entry: JournalEntry) -> Awaitable[None]:
        """Appends entry ``index`` to the log; resolves once the leader has applied it."""
        ...


class JournalMismatchError(TerminalError):
    """The handler's code no longer matches its journal (it changed while invocations ran)."""

    def __init__(self, index: int, expected: JournalEntry, got_kind: EntryKind, got_name: str):
        super().__init__(
            f"journal mismatch at entry {index}: the journal has {expected.kind.value} "
            f"{expected.name!r} but the handler now does {got_kind.value} {got_name!r}",
            500,
        )


@lru_cache(maxsize=1024)
def _return_type(fn: Callable[..., Any]) -> Any:
    try:
        return get_type_hints(fn).get("return")
    except Exception:
        return None


class Context:
    """The context of a service handler.

    Attributes:
        invocation_id: the id of this invocation (``inv_...``).
    """

    def __init__(
        self,
        invocation_id: str,
        journal: Sequence[JournalEntry],
        driver: JournalDriver,
        headers: dict[str, str] | None = None,
        attempt: int = 0,
    ) -> None:
        self.invocation_id = invocation_id
        self._replay = list(journal)
        self._driver = driver
        self._next_index = 0
        self._headers = dict(headers or {})
        self._attempt = attempt
        # One future per entry this attempt will propose: entry n is proposed only after n-1.
        self._proposed: dict[int, asyncio.Future[None]] = {}

    def headers(self) -> dict[str, str]:
        """The headers the invocation was started with."""
        return dict(self._headers)

    def step_idempotency_key(self) -> str:
        """A key unique to the running step, stable across its retries: ``<invocation id>:<n>``.

        Call it inside a function run by :meth:`run` and pass it to downstream APIs that
        deduplicate (payment providers, ...), so that a step retried after a crash is not
        applied twice there.
        """
        key = _current_step.get()
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
        result_type = _return_type(fn)
        recorded = self._replayed(index, EntryKind.RUN, name)
        if recorded is not None:
            return self._outcome(recorded, result_type)
        mine = self._proposed[index] = asyncio.get_running_loop().create_future()
        try:
            entry = await self._execute(index, name, fn, args, kwargs, options, result_type)
            await self._propose(index, entry)
        except BaseException as err:
            if not mine.done():
                mine.set_exception(err)
                mine.exception()  # retrieved: later entries re-raise it
            raise
        return self._outcome(entry, result_type)

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

    # -- internals ----------------------------------------------------------------------------

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
        token = _current_step.set(step_key)
        try:
            if inspect.iscoroutinefunction(fn):
                return await fn(*args, **kwargs)
            # to_thread copies the context, so step_idempotency_key() works in the thread too.
            result = await asyncio.to_thread(fn, *args, **kwargs)
            if inspect.isawaitable(result):
                return await result
            return result
        finally:
            _current_step.reset(token)

    async def _propose(self, index: int, entry: JournalEntry) -> None:
        # Entries must reach the log in index order even when steps finish out of order.
        previous = self._proposed.get(index - 1)
        if previous is not None:
            await asyncio.shield(previous)
        await self._driver.propose(index, entry)
        self._proposed[index].set_result(None)


def _delay(policy: RetryPolicy, attempt: int) -> float:
    return policy.delay_after(attempt).total_seconds()
