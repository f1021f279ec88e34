"""The handler context: durable steps over the invocation's journal.

Each durable action takes the next journal index. When the journal already holds that index
(a replay after a crash or a retry) the recorded outcome is returned and nothing runs. Otherwise
the action runs, its outcome is proposed to the log, and the handler resumes only once the
partition's leader has read it back (DESIGN.md invariant 4).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import random
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from functools import lru_cache
from typing import Any, Generic, TypeVar, get_type_hints, overload

from perdure.engine.errors import InvalidId
from perdure.engine.ids import InvocationId, awakeable_id, call_uid
from perdure.engine.limits import failure_code
from perdure.engine.model import (
    READ_KINDS,
    CallSpec,
    EntryKind,
    Failure,
    HandlerKind,
    JournalEntry,
    OutgoingRecord,
    StateOp,
    StateOpKind,
    Target,
)
from perdure.engine.scopes import scoped_key, split_key
from perdure.sdk import clock, serde
from perdure.sdk.call_targets import check_key, invocation_id_for
from perdure.sdk.errors import InvocationAborted, TerminalError, checked_delay_ms, checked_name
from perdure.sdk.journal import JournalDriver, JournalMismatchError, SendHandle
from perdure.sdk.options import RetryPolicy, RunOptions
from perdure.sdk.publishing import outgoing_record

T = TypeVar("T")

_current_step: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "perdure_step", default=None
)


def _return_type(fn: Callable[..., Any]) -> Any:
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
            entry = await self._propose(index, entry)
        except BaseException as err:
            _fail(mine, err)
            raise
        return self._outcome(entry, result_type)

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
            _fail(mine, err)
            raise

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
            _fail(mine, err)
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
                    _fail(mine, err)
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

        return awakeable, _Lazy(value)

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

    # -- calls --------------------------------------------------------------------------------

    async def service_call(self, handler: Callable[..., Awaitable[T]], arg: Any = None) -> T:
        """Calls a service handler durably and returns its result.

        The call and its result are journaled: after a crash on either side it is neither lost
        nor made twice. A :class:`TerminalError` of the callee is raised here.
        """
        return await self._call_handler(handler, None, arg)  # type: ignore[no-any-return]

    async def object_call(
        self, handler: Callable[..., Awaitable[T]], key: str, arg: Any = None
    ) -> T:
        """Calls a virtual object's handler for ``key`` durably and returns its result."""
        return await self._call_handler(handler, key, arg)  # type: ignore[no-any-return]

    async def workflow_call(
        self, handler: Callable[..., Awaitable[T]], key: str, arg: Any = None
    ) -> T:
        """Calls a workflow handler (its main one runs once per id) and returns its result."""
        return await self._call_handler(handler, key, arg)  # type: ignore[no-any-return]

    async def service_send(
        self, handler: Callable[..., Any], arg: Any = None, *, delay: timedelta | None = None
    ) -> SendHandle:
        """Starts a service handler without waiting for it; returns its invocation's handle.

        With ``delay``, the invocation is scheduled: it starts no earlier than ``delay`` from now.
        """
        return await self._send(handler, None, arg, delay)

    async def object_send(
        self,
        handler: Callable[..., Any],
        key: str,
        arg: Any = None,
        *,
        delay: timedelta | None = None,
    ) -> SendHandle:
        """Starts a virtual object's handler for ``key`` without waiting for it."""
        return await self._send(handler, key, arg, delay)

    async def workflow_send(
        self,
        handler: Callable[..., Any],
        key: str,
        arg: Any = None,
        *,
        delay: timedelta | None = None,
    ) -> SendHandle:
        """Starts a workflow handler without waiting for it."""
        return await self._send(handler, key, arg, delay)

    def _call_spec(
        self, handler: Callable[..., Any], key: str | None, arg: Any
    ) -> tuple[Any, CallSpec]:
        h = getattr(handler, "__perdure_handler__", None)
        if h is None:
            raise TerminalError(f"{handler!r} is not a Perdure handler (decorate it first)")
        kind = h.invocation_kind
        check_key(h, key, 500)
        if key is not None and self._target is not None and self._target.key is not None:
            # A call from a scoped object or workflow stays in its scope.
            key = scoped_key(split_key(self._target.key)[0], key)
        if key is not None:
            checked_name(key, f"the key of a call to {h.service}/{h.name}")
        if (
            kind is HandlerKind.EXCLUSIVE
            and self._handler_kind is HandlerKind.EXCLUSIVE
            and self._target is not None
            and (self._target.service, self._target.key) == (h.service, key)
        ):
            raise TerminalError(
                f"calling exclusive handler {h.service}/{key}/{h.name} from an exclusive handler "
                f"of the same key would deadlock: use a send, or a shared handler",
                500,
            )
        body = serde.encode(arg, h.input_type) if h.takes_input else b""
        index = self._next_index  # the entry this call is about to take
        uid = call_uid(self.invocation_id, index)
        callee = str(invocation_id_for(h, key, uid))
        return h, CallSpec(Target(h.service, h.name, key), kind, body, callee)

    async def _call_handler(self, handler: Callable[..., Any], key: str | None, arg: Any) -> Any:
        h, spec = self._call_spec(handler, key, arg)
        name = str(spec.target)
        entry = await self._record(
            EntryKind.CALL, name, JournalEntry(EntryKind.CALL, name, call=spec, completed=False)
        )
        return self._outcome(entry, h.output_type)

    async def _send(
        self,
        handler: Callable[..., Any],
        key: str | None,
        arg: Any,
        delay: timedelta | None = None,
    ) -> SendHandle:
        _, spec = self._call_spec(handler, key, arg)
        if delay is not None:
            ms = max(int(delay.total_seconds() * 1000), 0)
            spec = replace(spec, delay_ms=checked_delay_ms(ms, "a send's delay"))
        name = str(spec.target)
        entry = await self._record(
            EntryKind.SEND, name, JournalEntry(EntryKind.SEND, name, call=spec, completed=False)
        )
        return SendHandle((entry.value or b"").decode() or spec.callee_id)

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


def _now() -> float:
    return clock.now()


def _fail(fut: asyncio.Future[None], err: BaseException) -> None:
    if not fut.done():
        fut.set_exception(err)
        fut.exception()  # retrieved: later entries re-raise it


def _delay(policy: RetryPolicy, attempt: int) -> float:
    return policy.delay_after(attempt).total_seconds()


class _Lazy(Generic[T]):
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
