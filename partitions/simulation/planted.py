"""Planted faults: small patches that break one guarantee each, to prove the simulator sees it.

Each is a context manager that patches the engine while it is active. The tests
(tests/partitions/simulation/test_planted_faults.py) assert that the seeds CI runs catch every
one; ``python -m partitions.simulation --plant NAME`` replays a seed with one planted.

The first seven are the issue's list; the last three put back faults that earlier reviews and
chaos runs found, with their fixes reverted: the zombie step (issue 31: a handler of a worker
stopped past its session ran its next step), the publish that overtook its predecessor (issue
31: the record was published, its entry dropped as out of turn, and the replay published
again), and an attempt restarted from the journal it started with instead of the store's. The
last is one the simulator found itself (seed 136): a publish that went ahead although the log
had refused the record before it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from unittest import mock

from perdure.engine import journal_rules, lifecycle, rejection, state_machine
from perdure.engine.model import EntryKind, HandlerKind, Phase
from perdure.engine.records import Invoke, ProposeEntry
from perdure.partitions.handlers import driver as driver_module
from perdure.partitions.handlers.invoker import Invoker
from perdure.partitions.lease import Lease
from perdure.partitions.runtime import duties
from perdure.sdk import InvocationAborted


@contextlib.contextmanager
def _no_fence_for_proposals() -> Iterator[None]:
    with mock.patch.object(state_machine, "FENCED", state_machine.FENCED - {ProposeEntry}):
        yield


@contextlib.contextmanager
def _ack_before_commit() -> Iterator[None]:
    original = Invoker._propose

    async def early(
        self: Invoker, attempt: Any, index: int, entry: Any, appended: Any = None
    ) -> Any:
        if entry.kind is not EntryKind.RUN:
            return await original(self, attempt, index, entry, appended)
        start = attempt.start
        self._append(attempt, ProposeEntry(start.invocation_id, start.attempt, index, entry))
        if appended is not None:
            appended()
        return replace(entry, completed=True)  # as if the log had it already

    with mock.patch.object(Invoker, "_propose", early):
        yield


@contextlib.contextmanager
def _no_lease_check() -> Iterator[None]:
    with mock.patch.object(Lease, "current", return_value=True):
        yield


@contextlib.contextmanager
def _timer_one_tick_early() -> Iterator[None]:
    original = duties.fire_timers

    def early(proc: Any, writer: Any, now_ms: int) -> int:
        return original(proc, writer, now_ms + 1)

    with mock.patch.object(duties, "fire_timers", early):
        yield


@contextlib.contextmanager
def _no_receiver_dedup() -> Iterator[None]:
    original = state_machine._invoke_again

    def again(c: Invoke, existing: Any, txn: Any) -> Any:
        if c.caller is not None and existing.phase is Phase.COMPLETED:
            # A redelivered call starts the callee over instead of answering what it returned.
            fresh = replace(existing, phase=Phase.RUNNING, journal_length=0, result=None)
            return lifecycle.begin(txn, replace(fresh, failure=None, completed_ms=None))
        return original(c, existing, txn)

    with mock.patch.object(state_machine, "_invoke_again", again):
        yield


@contextlib.contextmanager
def _shared_handler_writes() -> Iterator[None]:
    writers = journal_rules.WRITERS | {HandlerKind.SHARED}
    with (
        mock.patch.object(journal_rules, "WRITERS", writers),
        mock.patch.object(state_machine, "WRITERS", writers),
    ):
        yield


@contextlib.contextmanager
def _skip_raising_record() -> Iterator[None]:
    with mock.patch.object(rejection, "reject", return_value=[]):
        yield


@contextlib.contextmanager
def _zombie_step() -> Iterator[None]:
    with mock.patch.object(driver_module.AttemptDriver, "may_act", return_value=True):
        yield


@contextlib.contextmanager
def _publish_overtakes() -> Iterator[None]:
    async def at_once(_attempt: Any, _timeout_s: float) -> None:
        return None

    with mock.patch.object(driver_module, "until_delivered", at_once):
        yield


@contextlib.contextmanager
def _restart_from_memory() -> Iterator[None]:
    def give_up(self: Invoker, attempt: Any, _why: str) -> None:
        start = attempt.start
        current = self.attempts.get(start.invocation_id)
        if current is None or current is not attempt:
            return
        del self.attempts[start.invocation_id]
        self._cancel(current)
        # The journal the attempt started with, not the one the store holds now.
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, self.start, current.partition, current.epoch, start)

    with mock.patch.object(Invoker, "_give_up", give_up):
        yield


@contextlib.contextmanager
def _publish_after_refusal() -> Iterator[None]:
    async def counts_only(attempt: Any, timeout_s: float) -> None:
        # The wait as it was: until every record is taken *or refused*.
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout_s
        while attempt.delivered < attempt.appended:
            if loop.time() > give_up:
                raise InvocationAborted()
            await asyncio.sleep(0.001)

    with mock.patch.object(driver_module, "until_delivered", counts_only):
        yield


PLANTED: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "no-fence-for-proposals": _no_fence_for_proposals,
    "ack-before-commit": _ack_before_commit,
    "no-lease-check": _no_lease_check,
    "timer-one-tick-early": _timer_one_tick_early,
    "no-receiver-dedup": _no_receiver_dedup,
    "shared-handler-writes": _shared_handler_writes,
    "skip-raising-record": _skip_raising_record,
    "zombie-step": _zombie_step,
    "publish-overtakes": _publish_overtakes,
    "restart-from-memory": _restart_from_memory,
    "publish-after-refusal": _publish_after_refusal,
}
"""Every planted fault, by the name ``--plant`` takes."""
