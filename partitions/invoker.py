"""Invoker: runs SDK handlers as asyncio tasks, one per running invocation.

The processor thread tells the invoker what to start, which journal entries are durable and
when to let go of a partition; the invoker appends proposals and completions to the log. A
handler waits on the acknowledgement of each step, which only comes from the processor having
read the step back from the log as leader (DESIGN.md invariant 4).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from confluent_kafka import KafkaError

from engine.model import EntryKind, Failure, HandlerKind, JournalEntry, ServiceKind
from engine.records import (
    AckEntry,
    AttemptFailed,
    Command,
    Complete,
    Envelope,
    ProposeEntry,
    StartInvocation,
    Suspend,
)
from partitions.log import LogWriter
from partitions.metrics import WorkerMetrics
from sdk import (
    Context,
    Endpoint,
    InvocationAborted,
    ObjectContext,
    ObjectSharedContext,
    TerminalError,
    WorkflowContext,
    WorkflowSharedContext,
)

log = logging.getLogger("perdure.invoker")

_REDELIVERY_DELAY_S = 1.0
_MS = timedelta(milliseconds=1)


@dataclass
class _Attempt:
    partition: int
    epoch: int
    start: StartInvocation
    pending: dict[int, asyncio.Future[JournalEntry | None]] = field(default_factory=dict)
    early: dict[int, JournalEntry] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


class Invoker:
    """Runs the handlers of ``endpoint`` for the partitions this worker leads.

    All methods run on the invoker's event loop; the processor thread reaches them through
    ``loop.call_soon_threadsafe``.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        writer: LogWriter,
        leader_id: str,
        metrics: WorkerMetrics,
        suspend_after_s: float = 1.0,
    ) -> None:
        self.suspend_after_s = suspend_after_s
        self.endpoint = endpoint
        self.writer = writer
        self.leader_id = leader_id
        self.metrics = metrics
        self.attempts: dict[str, _Attempt] = {}

    @property
    def running(self) -> int:
        """How many handler tasks are alive."""
        return sum(1 for a in self.attempts.values() if a.task is not None and not a.task.done())

    def start(
        self, partition: int, epoch: int, action: StartInvocation, delay_s: float = 0
    ) -> None:
        """Starts attempt ``action.attempt`` unless that attempt already runs here."""
        current = self.attempts.get(action.invocation_id)
        if current is not None:
            if current.start.attempt == action.attempt and current.epoch == epoch:
                return
            self._cancel(current)
        attempt = _Attempt(partition, epoch, action)
        self.attempts[action.invocation_id] = attempt
        attempt.task = asyncio.get_running_loop().create_task(
            self._run(attempt, delay_s), name=f"invocation {action.invocation_id}"
        )

    def ack(self, action: AckEntry) -> None:
        """Entry ``action.index`` is durable: wake the handler waiting on it."""
        attempt = self.attempts.get(action.invocation_id)
        if attempt is None or attempt.start.attempt != action.attempt:
            return
        fut = attempt.pending.pop(action.index, None)
        if fut is not None and not fut.done():
            fut.set_result(action.entry)
        elif fut is None and action.entry is not None and action.entry.completed:
            attempt.early[action.index] = action.entry  # completed before anyone awaited it

    def ended(self, invocation_id: str) -> None:
        """The invocation completed: forget it."""
        attempt = self.attempts.pop(invocation_id, None)
        if attempt is not None and attempt.task is not None and not attempt.task.done():
            attempt.task.cancel()

    def release_partition(self, partition: int) -> None:
        """This worker no longer leads ``partition``: stop its handlers at their next await."""
        for invocation_id, attempt in list(self.attempts.items()):
            if attempt.partition == partition:
                self._cancel(attempt)
                del self.attempts[invocation_id]

    async def shutdown(self) -> None:
        """Stops every handler."""
        tasks = [a.task for a in self.attempts.values() if a.task is not None]
        for attempt in list(self.attempts.values()):
            self._cancel(attempt)
        self.attempts.clear()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _cancel(attempt: _Attempt) -> None:
        for fut in attempt.pending.values():
            if not fut.done():
                fut.set_exception(InvocationAborted())
        if attempt.task is not None and not attempt.task.done():
            attempt.task.cancel()

    def _append(
        self, attempt: _Attempt, command: Command, fut: asyncio.Future[Any] | None = None
    ) -> asyncio.Future[Any]:
        """Appends a record of this attempt.

        The returned future is resolved on delivery, unless ``fut`` is given: then only a
        failed delivery settles it (its success comes from elsewhere: the acknowledgement).
        """
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[Any] = fut if fut is not None else loop.create_future()
        only_failure = fut is not None

        def on_delivery(err: KafkaError | None) -> None:
            if err is not None or not only_failure:
                loop.call_soon_threadsafe(_settle, delivered, err)

        self.writer.append(
            attempt.partition,
            Envelope(command, attempt.epoch, self.leader_id),
            on_delivery,
        )
        return delivered

    async def _propose(
        self, attempt: _Attempt, index: int, entry: JournalEntry
    ) -> JournalEntry | None:
        acked: asyncio.Future[JournalEntry | None] = asyncio.get_running_loop().create_future()
        attempt.pending[index] = acked
        started = asyncio.get_running_loop().time()
        start = attempt.start
        self._append(attempt, ProposeEntry(start.invocation_id, start.attempt, index, entry), acked)
        if entry.kind in _WAITING_KINDS:
            return await self._wait_or_suspend(attempt, index, acked)
        completed = await acked  # fails if Kafka refused the record: restart after a pause
        self.metrics.step_ack_seconds.observe(asyncio.get_running_loop().time() - started)
        return completed

    async def _completion(self, attempt: _Attempt, index: int) -> JournalEntry:
        early = attempt.early.pop(index, None)
        if early is not None:
            return early
        fut = attempt.pending.get(index)
        if fut is None:
            fut = attempt.pending[index] = asyncio.get_running_loop().create_future()
        entry = await self._wait_or_suspend(attempt, index, fut)
        assert entry is not None
        return entry

    async def _wait_or_suspend(
        self, attempt: _Attempt, index: int, fut: asyncio.Future[JournalEntry | None]
    ) -> JournalEntry | None:
        """Waits for an entry that completes later (a timer, a call, a promise).

        Past ``suspend_after_s`` the attempt suspends: its task ends and the partition starts it
        again, replaying, when one of the entries it waits for completes.
        """
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.suspend_after_s)
        except TimeoutError:
            raise _Suspended(index) from None

    async def _run(self, attempt: _Attempt, delay_s: float) -> None:
        start = attempt.start
        try:
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            command = await self._execute(attempt)
            await self._append(attempt, command)
        except _Suspended:
            self._suspend(attempt)
        except _LogUnavailable as err:
            log.warning("invocation %s: %s; restarting it shortly", start.invocation_id, err)
            self._restart_later(attempt)
        except (asyncio.CancelledError, InvocationAborted):
            return
        finally:
            self.metrics.handlers_running.set(self.running)

    def _suspend(self, attempt: _Attempt) -> None:
        start = attempt.start
        waiting = tuple(sorted(i for i, f in attempt.pending.items() if not f.done()))
        if self.attempts.get(start.invocation_id) is attempt:
            del self.attempts[start.invocation_id]
        for fut in attempt.pending.values():
            fut.cancel()
        self._append(attempt, Suspend(start.invocation_id, start.attempt, waiting))
        self.metrics.suspensions.inc()

    def _restart_later(self, attempt: _Attempt) -> None:
        start = attempt.start
        loop = asyncio.get_running_loop()

        def again() -> None:
            if self.attempts.get(start.invocation_id) is attempt:
                del self.attempts[start.invocation_id]
                self.start(attempt.partition, attempt.epoch, start)

        loop.call_later(_REDELIVERY_DELAY_S, again)

    async def _execute(self, attempt: _Attempt) -> Command:
        start = attempt.start
        handler = self.endpoint.handler(start.target.service, start.target.handler)
        if handler is None:
            return Complete(
                start.invocation_id,
                start.attempt,
                failure=Failure(404, f"no handler {start.target} on this worker"),
            )
        driver = _Driver(self, attempt)
        context_type = _CONTEXTS.get((handler.service_kind, start.handler_kind), Context)
        ctx = context_type(
            start.invocation_id,
            start.journal,
            driver,
            dict(start.headers),
            start.attempt,
            target=start.target,
            handler_kind=start.handler_kind,
            state=start.state,
        )
        self.metrics.handlers_running.set(self.running)
        try:
            output = await handler.invoke(ctx, start.input)
            self.metrics.invocations_completed.labels("ok").inc()
            return Complete(
                start.invocation_id,
                start.attempt,
                result=output,
                state_ops=ctx.take_pending_state_ops(),
            )
        except TerminalError as err:
            self.metrics.invocations_completed.labels("failed").inc()
            return Complete(
                start.invocation_id,
                start.attempt,
                failure=Failure(err.status_code, err.message),
                state_ops=ctx.take_pending_state_ops(),
            )
        except _LogUnavailable:
            raise
        except Exception as err:
            attempts_made = start.attempt + 1
            if attempts_made >= handler.retry.max_attempts:
                self.metrics.invocations_completed.labels("failed").inc()
                return Complete(
                    start.invocation_id,
                    start.attempt,
                    failure=Failure(500, f"failed after {attempts_made} attempts: {err!r}"),
                )
            delay = handler.retry.delay_after(attempts_made)
            log.info(
                "invocation %s attempt %d failed: %r; retrying in %.2fs",
                start.invocation_id,
                attempts_made,
                err,
                delay.total_seconds(),
            )
            self.metrics.attempts_failed.inc()
            return AttemptFailed(
                start.invocation_id, start.attempt, repr(err)[:2000], int(delay / _MS)
            )


class _Suspended(InvocationAborted):
    """The handler waits for entry ``index`` longer than the invoker keeps a task for."""


_WAITING_KINDS = frozenset(
    {
        EntryKind.CALL,
        EntryKind.SLEEP,
        EntryKind.GET_PROMISE,
        EntryKind.COMPLETE_AWAKEABLE,
        EntryKind.CANCEL_INVOCATION,
    }
)


class _LogUnavailable(InvocationAborted):
    """Kafka did not take a record of this attempt."""


class _Driver:
    def __init__(self, invoker: Invoker, attempt: _Attempt) -> None:
        self._invoker = invoker
        self._attempt = attempt

    async def propose(self, index: int, entry: JournalEntry) -> JournalEntry | None:
        return await self._invoker._propose(self._attempt, index, entry)

    async def completion(self, index: int) -> JournalEntry:
        return await self._invoker._completion(self._attempt, index)


_CONTEXTS: dict[tuple[ServiceKind, HandlerKind], type[Context]] = {
    (ServiceKind.OBJECT, HandlerKind.EXCLUSIVE): ObjectContext,
    (ServiceKind.OBJECT, HandlerKind.SHARED): ObjectSharedContext,
    (ServiceKind.WORKFLOW, HandlerKind.WORKFLOW): WorkflowContext,
    (ServiceKind.WORKFLOW, HandlerKind.SHARED): WorkflowSharedContext,
}


def _settle(fut: asyncio.Future[Any], err: KafkaError | None) -> None:
    if fut.done():
        return
    if err is None:
        fut.set_result(None)
    else:
        fut.set_exception(_LogUnavailable(f"the log refused a record: {err.str()}"))
