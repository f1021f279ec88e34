"""TestRuntime: the real engine in the test's process, over an in-memory log, on virtual time.

The state machine, the invoker and the SDK's contexts are the ones workers run; what changes is
around them: the log is a list (partitions/local/memory_log.py), the store a dict, the clock
the test's (partitions/local/clock.py), and the worker can be crashed at any step
(partitions/local/crashes.py). A call goes through the records the ingress would append and
is answered by the responses the partition would send, so its semantics are those of HTTP.

Time: timers, delayed sends and retry back-offs wait on the virtual clock. It moves when the
test calls :meth:`TestRuntime.advance`, or, with ``auto_advance`` (the default), to the next
timer whenever the test waits for an outcome (``call``, ``attach``, a handle's ``result``) and
no handler can go on without time passing. While the test does not wait (after a ``send``),
time stands still, so a test can resolve an awakeable before a timeout races it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar, overload

from perdure.engine import keyed, keys, queries, state_machine
from perdure.engine.errors import InvalidId
from perdure.engine.ids import (
    InvocationId,
    awakeable_id,
    idempotent_uid,
    parse_any_awakeable_id,
)
from perdure.engine.model import (
    EntryKind,
    Failure,
    HandlerKind,
    JournalEntry,
    OutgoingRecord,
    Reply,
    Target,
)
from perdure.engine.records import (
    Attach,
    Cancel,
    Command,
    CompleteAwakeable,
    Invoke,
    Response,
)
from perdure.partitions.local.clock import VirtualClock
from perdure.partitions.local.crashes import Crash, CrashPlan
from perdure.partitions.local.memory_log import LogRecord
from perdure.partitions.local.partition import PARTITION, LocalPartition
from perdure.partitions.testing.invocation import Invocation, StuckError, outcome, seconds
from perdure.sdk import Endpoint, TerminalError, hosting
from perdure.sdk.hosting import HandlerDef

InputT = TypeVar("InputT")
OutputT = TypeVar("OutputT")


class TestRuntime:
    """Runs an endpoint's handlers on the real engine, in this process, on virtual time.

    Use it as ``async with TestRuntime(app) as rt:``. Calls take the handler function itself
    (``await rt.call(process_payment, order)``), with ``key=`` for objects and workflows, and
    return what the handler returns, decoded by its signature; a terminal failure raises
    :class:`TerminalError` with its status code, as over HTTP.

    Args:
        app: the services to run.
        auto_advance: move the clock to the next timer whenever the test waits for an outcome
            and every handler waits for time to pass.
        start: the virtual clock's first reading (default: now).
        suspend_after: how long (real time) a handler waiting for a timer, call or awakeable
            keeps its task before it suspends, as ``PERDURE_SUSPEND_AFTER_S`` (a
            ``timedelta`` or seconds).
        timeout: how long (real time) a call may take before the test fails with
            :class:`StuckError` describing where the invocation stands (a ``timedelta`` or
            seconds). A call that nothing can finish — every handler waits, no record is to
            apply and no timer is armed — fails at once, without waiting for it.
    """

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(
        self,
        app: Endpoint,
        *,
        auto_advance: bool = True,
        start: datetime | None = None,
        suspend_after: timedelta | float = timedelta(seconds=1),
        timeout: timedelta | float = timedelta(seconds=30),
    ) -> None:
        self.app = app
        self.clock = VirtualClock(start)
        self._auto_advance = auto_advance
        self._suspend_after_s = seconds(suspend_after, "suspend_after")
        self._timeout_s = seconds(timeout, "timeout")
        self._p: LocalPartition | None = None
        self._clock_token: Any = None

    @property
    def _part(self) -> LocalPartition:
        if self._p is None:
            raise RuntimeError("use the runtime inside `async with TestRuntime(app) as rt:`")
        return self._p

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> TestRuntime:
        self._clock_token = hosting.use_clock(self.clock.time)
        self._p = LocalPartition(self.app, self.clock, self._suspend_after_s, publish=True)
        self._p.auto_advance = self._auto_advance
        self._p.start()
        await self.settle()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._p is not None:
            await self._p.stop()
        if self._clock_token is not None:
            hosting.restore_clock(self._clock_token)

    # -- calling ----------------------------------------------------------------------------

    @overload
    async def call(
        self,
        handler: Callable[[Any], Awaitable[OutputT]],
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: timedelta | float | None = None,
    ) -> OutputT: ...

    @overload
    async def call(
        self,
        handler: Callable[[Any, InputT], Awaitable[OutputT]],
        arg: InputT,
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: timedelta | float | None = None,
    ) -> OutputT: ...

    async def call(
        self,
        handler: Callable[..., Awaitable[Any]],
        arg: Any = None,
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: timedelta | float | None = None,
    ) -> Any:
        """Calls a handler and waits for its result, as ``POST /{service}/{key}/{handler}``.

        ``timeout`` (real time) overrides the runtime's for this call.

        Raises:
            TerminalError: the invocation failed (its status code and message); 404 for a
                handler whose service is not in the runtime's Endpoint, as over HTTP.
            StuckError: it cannot finish (it waits for something only the test could do).
        """
        h = self._handler_def(handler)
        invoke, inv = self._invoke_record(h, arg, key, idempotency_key, headers, send=False)
        assert invoke.reply is not None  # a call always waits for its answer
        limit = None if timeout is None else seconds(timeout, "timeout")
        response = await self._request(invoke, invoke.reply.request_id, inv, limit_s=limit)
        return outcome(response, h.output_type)

    @overload
    async def send(
        self,
        handler: Callable[[Any], Awaitable[OutputT]],
        *,
        key: str | None = None,
        delay: timedelta | None = None,
        idempotency_key: str | None = None,
    ) -> Invocation[OutputT]: ...

    @overload
    async def send(
        self,
        handler: Callable[[Any, InputT], Awaitable[OutputT]],
        arg: InputT,
        *,
        key: str | None = None,
        delay: timedelta | None = None,
        idempotency_key: str | None = None,
    ) -> Invocation[OutputT]: ...

    async def send(
        self,
        handler: Callable[..., Awaitable[Any]],
        arg: Any = None,
        *,
        key: str | None = None,
        delay: timedelta | None = None,
        idempotency_key: str | None = None,
    ) -> Invocation[Any]:
        """Starts a handler without waiting for it (``.../send``, ``?delay=``); returns its
        handle once the invocation is recorded."""
        h = self._handler_def(handler)
        delay_ms = 0 if delay is None else int(delay.total_seconds() * 1000)
        invoke, inv = self._invoke_record(
            h, arg, key, idempotency_key, None, send=True, delay_ms=delay_ms
        )
        if invoke.reply is not None:
            response = await self._request(invoke, invoke.reply.request_id, inv, outcome=False)
            if response.failure is not None:
                raise TerminalError(response.failure.message, response.failure.code)
        else:
            self._part.append(invoke)
            await self.settle()
        return Invocation(self, invoke.invocation_id, h.output_type)

    async def attach(self, invocation_id: str, limit: timedelta | float | None = None) -> Any:
        """Waits for an invocation's outcome by its id; its result as JSON (untyped)."""
        return await self._attach(invocation_id, None, limit)

    async def resolve_awakeable(self, awakeable: str, value: Any = None) -> None:
        """Completes an awakeable with ``value``, as ``POST /restate/awakeables/{id}/resolve``.

        Raises:
            TerminalError: 404 (unknown, or its invocation ended), 409 (completed already).
        """
        await self._complete_awakeable(awakeable, hosting.encode(value), None)

    async def reject_awakeable(self, awakeable: str, reason: str) -> None:
        """Fails an awakeable: the handler's await raises :class:`TerminalError` (``reason``)."""
        await self._complete_awakeable(awakeable, None, Failure(500, reason))

    async def cancel(self, invocation_id: str, *, kill: bool = False) -> None:
        """Cancels an invocation (``DELETE /restate/invocation/{id}``), or kills it."""
        request_id = uuid.uuid4().hex
        record = Cancel(invocation_id, kill, Reply(PARTITION, request_id))
        response = await self._request(record, request_id, None, outcome=False)
        if response.failure is not None:
            raise TerminalError(response.failure.message, response.failure.code)

    # -- time -------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The virtual clock's reading."""
        return self.clock.now

    async def advance(self, by: timedelta) -> None:
        """Moves the clock forward by ``by``, firing each timer due on the way in time order
        and letting handlers run to their next wait after each."""
        target = self.clock.now_ms + int(by.total_seconds() * 1000)
        p = self._part
        p.advance_to_ms = target
        p.wake()
        try:
            while True:
                await p.wait_quiet()
                if self.clock.now_ms >= target:
                    break
        finally:
            p.advance_to_ms = None
        await self.settle()

    async def settle(self) -> None:
        """Waits until every record is applied and every handler waits (time stands still)."""
        self._part.wake()
        await self._part.wait_quiet()

    # -- crashes ----------------------------------------------------------------------------

    def crash_after(self, step: str | None = None, *, before_journal: bool = False) -> None:
        """Crashes the worker once right after entry ``step`` (a ``ctx.run`` name, ``sleep``,
        ...) is journaled, or with ``before_journal`` once after the step's action ran but
        before its result was journaled; the invocation replays from its journal. ``step``
        None: every entry."""
        steps = None if step is None else frozenset([step])
        self._part.plans.append(CrashPlan(steps, before_journal, not before_journal))

    def crash_every_step(self, *, before_journal: bool = True) -> None:
        """Crashes the worker at every entry of every invocation, once each: after it is
        journaled and (``before_journal``) after each ``ctx.run`` action ran but before its
        result is journaled. A handler that passes is deterministic on replay and its steps
        are safe to run again."""
        self._part.plans.append(CrashPlan(None, before_journal, True))

    # -- inspection -------------------------------------------------------------------------

    @property
    def crashes(self) -> list[Crash]:
        """Every crash the runtime made so far, in order."""
        return list(self._part.crashes)

    def journal(self, invocation_id: str) -> list[JournalEntry]:
        """The invocation's journal as its partition holds it."""
        return list(state_machine.journal(self._part.store, invocation_id))

    def describe(self, invocation_id: str, results: bool = False) -> dict[str, Any]:
        """The operators' view of an invocation, as ``GET /invocations/{id}`` shows it."""
        return queries.describe(self._part.store, invocation_id, self.clock.now_ms, results)

    def state(self, service: str | Callable[..., Any], key: str) -> dict[str, Any]:
        """A virtual object's or workflow's state for ``key``, each value decoded as JSON."""
        name = service if isinstance(service, str) else self._handler_def(service).service
        return {
            k: hosting.decode(v, None) for k, v in keyed.read_state(self._part.store, name, key)
        }

    def records(self) -> list[LogRecord]:
        """Every record the log holds, in order (what Kafka would hold)."""
        return self._part.log.records()

    def rejected(self) -> dict[int, str]:
        """The records the partition rejected (engine/rejection.py), by offset: why each was.

        An edge should have refused each of them first: a test can assert this is empty.
        """
        return {
            keys.offset_of_rejected_key(k): json.loads(v)["reason"]
            for k, v in self._part.store.scan(keys.REJECTED)
        }

    def published(self, topic: str | None = None) -> list[OutgoingRecord]:
        """The records handlers published with ``ctx.publish`` (to ``topic``, if given), in
        order: what a ``read_committed`` consumer would read, each exactly once."""
        publisher = self._part.publisher
        assert publisher is not None
        return [r for r in publisher.records if topic is None or r.topic == topic]

    def awakeables(self, invocation_id: str) -> list[str]:
        """The ids of the invocation's awakeables that are not completed yet."""
        return [
            awakeable_id(invocation_id, i)
            for i, e in enumerate(self.journal(invocation_id))
            if e.kind is EntryKind.AWAKEABLE and not e.completed
        ]

    # -- internals: records in --------------------------------------------------------------

    def _handler_def(self, handler: Callable[..., Any]) -> HandlerDef:
        h = getattr(handler, "__perdure_handler__", None)
        if not isinstance(h, HandlerDef):
            raise TypeError(
                f"{handler!r} is not a Perdure handler (decorate it with @svc.handler())"
            )
        service = self.app.services.get(h.service)
        if service is None or h.name not in service.handlers:
            # As the ingress answers: the Endpoint does not serve it.
            raise TerminalError(
                f"service {h.service!r} is not in this runtime's Endpoint "
                f"(it has {sorted(self.app.services)})",
                404,
            )
        return h

    def _invoke_record(
        self,
        h: HandlerDef,
        arg: Any,
        key: str | None,
        idempotency_key: str | None,
        headers: dict[str, str] | None,
        *,
        send: bool,
        delay_ms: int = 0,
    ) -> tuple[Invoke, InvocationId]:
        kind = h.invocation_kind
        hosting.check_key(h, key)
        if idempotency_key and kind is HandlerKind.WORKFLOW:
            raise TerminalError("a workflow run is idempotent by its key already", 400)
        body = hosting.encode(arg, h.input_type) if h.takes_input else b""
        uid = idempotent_uid(h.service, h.name, key, idempotency_key) if idempotency_key else None
        inv = hosting.invocation_id_for(h, key, uid)
        wait = not send or bool(idempotency_key) or kind is HandlerKind.WORKFLOW
        reply = Reply(PARTITION, uuid.uuid4().hex) if wait else None
        record = Invoke(
            str(inv),
            Target(h.service, h.name, key),
            body,
            reply,
            idempotency_key,
            send,
            tuple((headers or {}).items()),
            kind,
            delay_ms=delay_ms,
        )
        return record, inv

    async def _attach(
        self, invocation_id: str, output_type: Any, limit: timedelta | float | None
    ) -> Any:
        request_id = uuid.uuid4().hex
        record = Attach(invocation_id, Reply(PARTITION, request_id), True)
        limit_s = None if limit is None else seconds(limit, "limit")
        response = await self._request(record, request_id, invocation_id, limit_s=limit_s)
        return outcome(response, output_type)

    async def _complete_awakeable(
        self, awakeable: str, value: bytes | None, failure: Failure | None
    ) -> None:
        try:
            invocation_id, index = parse_any_awakeable_id(awakeable)
        except InvalidId as err:
            raise TerminalError(f"awakeable {awakeable[:100]!r} not found: {err}", 404) from None
        request_id = uuid.uuid4().hex
        record = CompleteAwakeable(invocation_id, index, value, failure, Reply(0, request_id))
        response = await self._request(record, request_id, None, outcome=False)
        if response.failure is not None:
            raise TerminalError(response.failure.message, response.failure.code)

    async def _request(
        self,
        record: Command,
        request_id: str,
        about: InvocationId | str | None,
        *,
        outcome: bool = True,
        limit_s: float | None = None,
    ) -> Response:
        """Appends ``record`` and waits for the response to ``request_id``.

        ``outcome``: the answer waits on an invocation's end, so time may be advanced for it.
        """
        p = self._part
        fut = p.waiter(request_id, outcome)
        stuck: asyncio.Future[Any] = asyncio.ensure_future(self._nothing_can_finish(fut))
        try:
            p.append(record)
            limit = self._timeout_s if limit_s is None else limit_s
            waits: list[asyncio.Future[Any]] = [fut, stuck]
            done, _ = await asyncio.wait(waits, timeout=limit, return_when="FIRST_COMPLETED")
            if fut in done:
                return fut.result()
            if stuck in done and stuck.result():
                raise StuckError(self._describe(about, None))
            raise StuckError(self._describe(about, limit))
        finally:
            stuck.cancel()
            p.forget(request_id)

    async def _nothing_can_finish(self, fut: asyncio.Future[Response]) -> bool:
        """True once nothing in the runtime can answer ``fut``: every record is applied, every
        handler waits, and no timer or retry is armed for the clock to move to. Looked at on
        the partition's quiet moments, twice, so that a record in flight is not missed."""
        p = self._part
        while True:
            await p.wait_quiet()
            for _ in range(3):
                await asyncio.sleep(0)
            if fut.done() or not self._could_be_stuck():
                await asyncio.sleep(0.01)  # time may move for it, or a leader take over
                continue
            await p.wait_quiet()
            if not fut.done() and self._could_be_stuck():
                return True

    def _could_be_stuck(self) -> bool:
        """Quiet, leading (not between a crash and the next claim), nothing armed or to apply."""
        p = self._part
        return (
            p.proc.is_leader
            and p.invoker.all_waiting()
            and p.runtime.next_due_ms() is None
            and not p.pending()
        )

    def _describe(self, about: InvocationId | str | None, limit: float | None) -> str:
        within = (
            "nothing in the runtime can finish it (every handler waits and no timer is armed)"
            if limit is None
            else f"no answer within {limit:.0f}s (real time)"
        )
        if about is None:
            return within
        invocation_id = str(about)
        journal = self.journal(invocation_id)
        waits = [
            f"{i}: {e.kind.value} {e.name!r}" for i, e in enumerate(journal) if not e.completed
        ]
        where = (
            f"it waits on entry {', '.join(waits)}" if waits else "it is not waiting on an entry"
        )
        return (
            f"invocation {invocation_id} did not finish: {within}; "
            f"{where}. If it waits for an awakeable or a promise, complete it from the test "
            "(rt.send, then rt.resolve_awakeable or a call), then wait for its result."
        )
