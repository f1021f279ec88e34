"""Invoker: runs SDK handlers as asyncio tasks, one per running invocation.

The processor thread tells the invoker what to start, which journal entries are durable and
when to let go of a partition; the invoker appends proposals and completions to the log. A
handler waits on the acknowledgement of each step, which only comes from the processor having
read the step back from the log as leader (DESIGN.md invariant 4).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from confluent_kafka import KafkaError

from perdure.engine.deployments import Deployment
from perdure.engine.model import Failure, JournalEntry, OutgoingRecord
from perdure.engine.records import (
    AckEntry,
    Command,
    Complete,
    Envelope,
    ProposeEntry,
    StartInvocation,
    Suspend,
)
from perdure.partitions.errors import PublishError
from perdure.partitions.handlers import driver, failures, invocation_log
from perdure.partitions.handlers.attempts import (
    COMPLETED_LATER,
    WAITING_KINDS,
    Attempt,
    Suspended,
    acknowledged,
)
from perdure.partitions.kafka.publisher import UnknownOutcome
from perdure.partitions.lease import Lease
from perdure.partitions.log import LogAppender, RecordPublisher
from perdure.partitions.metrics import WorkerMetrics
from perdure.partitions.remote.answer import RemoteFailure
from perdure.partitions.remote.invoker import RemoteInvoker
from perdure.partitions.remote.ops import RemoteOps
from perdure.partitions.remote.retry import remote_retry
from perdure.sdk import (
    Context,
    Endpoint,
    InvocationAborted,
    TerminalError,
)

log = logging.getLogger("perdure.invoker")

_RESTART_DELAY_S = 1.0


Restart = Callable[[int, str], None]
"""Asks the processor to start an invocation again from its store: (partition, invocation id)."""


class Invoker:
    """Runs the handlers of ``endpoint`` for the partitions this worker leads.

    All methods run on the invoker's event loop; the processor thread reaches them through
    ``loop.call_soon_threadsafe``.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        writer: LogAppender,
        metrics: WorkerMetrics,
        suspend_after_s: float = 1.0,
        restart: Restart | None = None,
        ack_timeout_s: float = 30.0,
        publisher: RecordPublisher | None = None,
        remote: RemoteInvoker | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.lease = lease if lease is not None else Lease.always()
        """Checked before every effect: an attempt's start, a step, an acknowledgement."""
        self.publisher = publisher
        self.remote = remote
        """Runs the services of registered deployments (Restate SDKs), which no handler here has."""
        self.suspend_after_s = suspend_after_s
        self.ack_timeout_s = ack_timeout_s
        self._restart = restart
        self.endpoint = endpoint
        self.writer = writer
        self.metrics = metrics
        self.attempts: dict[str, Attempt] = {}
        self.draining = False
        """A graceful stop began (:meth:`drain`): nothing new starts here."""
        # Counted when scraped, not on every start and end: a count over every attempt per
        # event cost the hot path O(in flight) each time.
        metrics.handlers_running.set_function(self._handlers_alive)
        metrics.invocations_parked.set_function(self._parked)

    def _handlers_alive(self) -> int:
        # On the scrape's thread: list() copies the values in one step under the GIL.
        return sum(
            1 for a in list(self.attempts.values()) if a.task is not None and not a.task.done()
        )

    def _parked(self) -> int:
        return sum(a.parked for a in list(self.attempts.values()))

    def all_waiting(self) -> bool:
        """Whether every live handler waits for something outside its attempt (a timer, a
        call, an awakeable, a retry): none is in a step or about to start one."""
        return all(
            a.task is None or a.task.done() or a.waiting or a.parked for a in self.attempts.values()
        )

    async def watch_acks(self) -> None:
        """Gives up attempts whose proposal was never acknowledged (runs until cancelled).

        A proposal is dropped when it arrives out of turn (after a record of the attempt was
        lost) and waits for ever otherwise; the attempt then restarts from the store. One
        periodic check costs the hot path nothing, unlike a timeout on every step.
        """
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(self.ack_timeout_s / 4, 0.05))
            now = loop.time()
            for attempt in list(self.attempts.values()):
                if attempt.unacked and now - min(attempt.unacked.values()) > self.ack_timeout_s:
                    index = min(attempt.unacked, key=attempt.unacked.__getitem__)
                    why = f"entry {index} was not acknowledged within {self.ack_timeout_s}s"
                    self._give_up(attempt, why)

    def start(
        self, partition: int, epoch: int, action: StartInvocation, delay_s: float = 0
    ) -> None:
        """Starts attempt ``action.attempt`` unless that attempt already runs here (or the
        worker is draining: the partition's next leader starts it)."""
        if self.draining or not self.lease.current():
            return
        current = self.attempts.get(action.invocation_id)
        if current is not None:
            same = current.start.attempt == action.attempt and current.epoch == epoch
            if same and not (current.delayed and delay_s == 0):
                return  # it runs already (a start that only cuts a back-off short is moot)
            self._cancel(current)
        attempt = Attempt(partition, epoch, action, delayed=delay_s > 0)
        self.attempts[action.invocation_id] = attempt
        attempt.task = asyncio.get_running_loop().create_task(
            self._run(attempt, delay_s), name=f"invocation {action.invocation_id}"
        )

    def ack(self, partition: int, action: AckEntry) -> None:
        """Entry ``action.index`` is durable: wake the handler waiting on it."""
        if not self.lease.current():
            return  # a deposed leader wakes no handler: the next leader resumes it
        attempt = self.attempts.get(action.invocation_id)
        if attempt is None or attempt.start.attempt != action.attempt:
            entry = action.entry
            if attempt is None and entry is not None and entry.kind in COMPLETED_LATER:
                # What a suspended attempt waits for completed, but the partition may not know
                # it suspended (its Suspend record was lost): start it again from the store.
                self._request_restart(partition, action.invocation_id, 0)
            return
        fut = attempt.pending.pop(action.index, None)
        if fut is not None and not fut.done():
            fut.set_result(action.entry)
            attempt.waiting = False  # runnable from now on, though its task has not run yet
        elif fut is None and action.entry is not None and action.entry.kind in COMPLETED_LATER:
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

    async def drain(self, timeout_s: float) -> tuple[int, int]:
        """The first half of a graceful stop, while this worker still leads its partitions.

        Nothing new starts; a handler in a step finishes it (its result is journaled, not run
        again by the next leader) and runs on to its end or its next wait; handlers that wait,
        or wait out a retry back-off, stop now: the next leader resumes them from the journal.
        The worker hands its partitions over when all have stopped or ``timeout_s`` passed.

        Returns:
            How many handlers stopped by themselves, and how many still ran at the timeout
            (stopped by :meth:`shutdown`; a step in flight there may run again).
        """
        self.draining = True
        for attempt in list(self.attempts.values()):
            if attempt.task is not None and (attempt.waiting or attempt.delayed):
                attempt.task.cancel()
        running = [a.task for a in self.attempts.values() if a.task is not None]
        running = [t for t in running if not t.done()]
        if not running:
            return 0, 0
        done, pending = await asyncio.wait(running, timeout=timeout_s)
        return len(done), len(pending)

    async def shutdown(self) -> None:
        """Stops every handler."""
        tasks = [a.task for a in self.attempts.values() if a.task is not None]
        for attempt in list(self.attempts.values()):
            self._cancel(attempt)
        self.attempts.clear()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _cancel(attempt: Attempt) -> None:
        for fut in attempt.pending.values():
            if not fut.done():
                fut.set_exception(InvocationAborted())
                fut.exception()  # retrieved: nobody may be waiting on it any more
        if attempt.task is not None and not attempt.task.done():
            attempt.task.cancel()

    def _request_restart(self, partition: int, invocation_id: str, after_s: float) -> None:
        """Starts the invocation again from what its partition's store says, not from memory."""
        if self._restart is None:
            return
        restart = self._restart
        if after_s <= 0:
            restart(partition, invocation_id)
        else:
            asyncio.get_running_loop().call_later(after_s, restart, partition, invocation_id)

    def _give_up(self, attempt: Attempt, why: str) -> None:
        """Abandons an attempt whose records may be lost, and restarts it from the store."""
        start = attempt.start
        if self.attempts.get(start.invocation_id) is not attempt:
            return
        log.warning("invocation %s: %s; restarting it from its journal", start.invocation_id, why)
        del self.attempts[start.invocation_id]
        self._cancel(attempt)
        self._request_restart(attempt.partition, start.invocation_id, _RESTART_DELAY_S)

    def _append(
        self, attempt: Attempt, command: Command, wait: bool = False
    ) -> asyncio.Future[None]:
        """Appends a record of this attempt; a record Kafka refused gives the attempt up.

        With ``wait``, the returned future resolves on delivery. Without it only a failure
        crosses over to the loop: a step's success comes back as its acknowledgement, and a
        wake-up of the loop for every delivered proposal would cost the hot path.
        """
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: KafkaError | None) -> None:
            if err is not None:
                attempt.refused = True  # before it counts as delivered: a publish reads both
            attempt.delivered += 1  # only the writer's thread counts: no lock needed
            if err is not None or wait:
                loop.call_soon_threadsafe(self._delivered, attempt, delivered, err)

        attempt.appended += 1
        self.writer.append(
            attempt.partition,
            Envelope(command, attempt.epoch),
            on_delivery,
        )
        return delivered

    def _delivered(
        self, attempt: Attempt, fut: asyncio.Future[None], err: KafkaError | None
    ) -> None:
        if err is not None:
            self._give_up(attempt, f"the log refused a record: {err.str()}")
        if not fut.done():
            if err is None:
                fut.set_result(None)
            else:
                fut.set_exception(InvocationAborted())
                fut.exception()

    async def _propose(
        self,
        attempt: Attempt,
        index: int,
        entry: JournalEntry,
        appended: Callable[[], None] | None = None,
    ) -> JournalEntry | None:
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[JournalEntry | None] = loop.create_future()
        attempt.pending[index] = acked
        started = loop.time()
        start = attempt.start
        self._append(attempt, ProposeEntry(start.invocation_id, start.attempt, index, entry))
        if appended is not None:
            appended()  # in the producer's queue, in order: the next entry may follow
        if entry.kind in WAITING_KINDS:
            return await self._wait_or_suspend(attempt, index, acked)
        completed = await acknowledged(attempt, index, acked, started)
        self.metrics.step_ack_seconds.observe(loop.time() - started)
        return completed

    async def _publish(
        self, attempt: Attempt, index: int, entry: JournalEntry, record: OutgoingRecord
    ) -> JournalEntry | None:
        """Publishes ``record`` and proposes ``entry`` in one transaction; acknowledged like
        any proposal, once the leader read the entry back."""
        if self.publisher is None:
            raise PublishError("this worker cannot publish (no publisher)")
        loop = asyncio.get_running_loop()
        # The transaction goes through another producer than the entries before it, and Kafka
        # orders records only within one producer: a publish that overtook its predecessor
        # would be dropped as out of turn after its record was committed, and published
        # again by the replay. So it waits until every earlier record of the attempt is in.
        try:
            await driver.until_delivered(attempt, self.ack_timeout_s)
        except InvocationAborted:
            # Restarted from the store; a bare abort left the attempt's task ended and nothing
            # to restart it while this worker kept leading (simulator seed 9039: it hung).
            self._give_up(attempt, "the log did not take its earlier records in time")
            raise
        acked: asyncio.Future[JournalEntry | None] = loop.create_future()
        attempt.pending[index] = acked
        start = attempt.start
        propose = ProposeEntry(start.invocation_id, start.attempt, index, entry)
        started = loop.time()
        try:
            envelope = Envelope(propose, attempt.epoch)
            await self.publisher.publish(attempt.partition, envelope, record)
        except UnknownOutcome as err:
            # Committed or not, only the log can say: wait for the acknowledgement; the
            # watchdog replays the attempt if none comes (the broker settles the transaction
            # within its timeout, which is shorter than the watchdog's).
            log.warning("invocation %s: publish outcome unknown (%s)", start.invocation_id, err)
        except BaseException:
            attempt.pending.pop(index, None)
            raise
        self.metrics.publish_seconds.observe(loop.time() - started)
        return await acknowledged(attempt, index, acked, loop.time())

    async def _completion(self, attempt: Attempt, index: int) -> JournalEntry:
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
        self, attempt: Attempt, index: int, fut: asyncio.Future[JournalEntry | None]
    ) -> JournalEntry | None:
        """Waits for an entry that completes later (a timer, a call, a promise).

        Past ``suspend_after_s`` the attempt suspends: its task ends and the partition starts it
        again, replaying, when one of the entries it waits for completes. A draining worker
        suspends it at once.
        """
        if self.draining and not fut.done():
            raise Suspended(index)
        attempt.waiting = True
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.suspend_after_s)
        except TimeoutError:
            if fut.done():
                return fut.result()  # completed while the wait was being cancelled
            raise Suspended(index) from None
        finally:
            attempt.waiting = False

    async def _run(self, attempt: Attempt, delay_s: float) -> None:
        try:
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            if not self.lease.current():
                return  # queued or backing off when the lease lapsed: the next leader starts it
            attempt.delayed = False
            command = await self._execute(attempt)
            if command is not None:
                await self._append(attempt, command, wait=True)
        except Suspended:
            self._suspend(attempt)
        except (asyncio.CancelledError, InvocationAborted):
            return

    def _suspend(self, attempt: Attempt) -> None:
        start = attempt.start
        waiting = tuple(sorted(i for i, f in attempt.pending.items() if not f.done()))
        if self.attempts.get(start.invocation_id) is attempt:
            del self.attempts[start.invocation_id]
        for fut in attempt.pending.values():
            fut.cancel()
        # A lost Suspend is harmless: the completion it waits for finds no attempt here and
        # restarts the invocation from the store (see ack); an empty one resumes at once.
        self._append(attempt, Suspend(start.invocation_id, start.attempt, waiting))
        self.metrics.suspensions.inc()
        invocation_log.event("suspended", start.invocation_id, "waiting on entries %s", waiting)

    async def _execute(self, attempt: Attempt) -> Command | None:
        start = attempt.start
        handler = self.endpoint.handler(start.target.service, start.target.handler)
        if handler is None and self.remote is not None:
            deployment = await self.remote.deployment(start)
            if deployment is not None:
                return await self._execute_remote(attempt, deployment)
        if handler is None:
            # Never fail it here: in a rolling deploy another worker (version) hosts it.
            attempt.parked = True
            log.warning(
                "invocation %s: no handler %s on this worker; it stays pending until a worker "
                "that hosts it leads partition %d (perdure_invocations_parked)",
                start.invocation_id,
                start.target,
                attempt.partition,
            )
            return None
        journal_driver = driver.AttemptDriver(self, attempt)
        context_type = driver.CONTEXTS.get((handler.service_kind, start.handler_kind), Context)
        ctx = context_type(
            start.invocation_id,
            start.journal,
            journal_driver,
            dict(start.headers),
            start.attempt,
            target=start.target,
            handler_kind=start.handler_kind,
            state=start.state,
        )
        t = start.target
        self.metrics.attempts_started.labels(t.service, t.handler).inc()
        if start.journal:
            invocation_log.event(
                "resumed",
                start.invocation_id,
                "attempt %d, replaying %d entries",
                start.attempt + 1,
                len(start.journal),
            )
        else:
            invocation_log.event("started", start.invocation_id, "attempt %d", start.attempt + 1)
        try:
            output = await handler.invoke(ctx, start.input)
            self.metrics.invocations_completed.labels(t.service, t.handler, "ok").inc()
            return Complete(
                start.invocation_id,
                start.attempt,
                result=output,
                state_ops=ctx.take_pending_state_ops(),
            )
        except TerminalError as err:
            self.metrics.invocations_completed.labels(t.service, t.handler, "failed").inc()
            return Complete(
                start.invocation_id,
                start.attempt,
                failure=Failure(err.status_code, err.message),
                state_ops=ctx.take_pending_state_ops(),
            )
        except Exception as err:
            return failures.failed_attempt(attempt, self.metrics, handler.retry, err)

    async def _execute_remote(self, attempt: Attempt, deployment: Deployment) -> Command:
        assert self.remote is not None
        start = attempt.start
        t = start.target
        self.metrics.attempts_started.labels(t.service, t.handler).inc()
        invocation_log.event(
            "started" if not start.journal else "resumed",
            start.invocation_id,
            "attempt %d on deployment %s (%s)",
            start.attempt + 1,
            deployment.id,
            deployment.uri,
        )
        retry = remote_retry(deployment, t)
        try:
            ops = RemoteOps(attempt, self._append, lambda: self.draining, self.suspend_after_s)
            command = await self.remote.execute(start, deployment, ops)
        except RemoteFailure as err:
            return failures.failed_attempt(
                attempt,
                self.metrics,
                retry.policy,
                err,
                pause=retry.pause,
                retry_in_ms=err.retry_in_ms,
            )
        except Exception as err:  # a bug of ours or bytes we misread: retried, never silent
            log.exception("invocation %s: remote attempt failed", start.invocation_id)
            return failures.failed_attempt(
                attempt, self.metrics, retry.policy, err, pause=retry.pause
            )
        if isinstance(command, Complete):
            outcome = "ok" if command.failure is None else "failed"
            self.metrics.invocations_completed.labels(t.service, t.handler, outcome).inc()
        return command
