"""The shared steps of an invocation's life: start or queue it, wake it, end it.

Both a normal completion and a cancellation or kill end an invocation through :func:`finish`,
so that whatever an invocation armed (timers, promise waits) goes with it and nothing it leaves
behind is re-armed by a later leader.
"""

from __future__ import annotations

from dataclasses import replace

from perdure.engine import keyed, keys, notifications, queries, timeline
from perdure.engine.model import (
    EntryKind,
    Failure,
    HandlerKind,
    InvocationStatus,
    JournalEntry,
    Phase,
)
from perdure.engine.records import AckEntry, Action, InvocationEnded
from perdure.engine.status import (
    get_status,
    notify,
    outcome,
    pending_entries,
    put_entry,
    put_status,
    start_of,
    take_waiters,
)
from perdure.engine.storage import PartitionTxn


def begin(txn: PartitionTxn, status: InvocationStatus) -> list[Action]:
    """Starts a new invocation, or queues it behind its key's exclusive invocation."""
    if status.handler_kind is HandlerKind.EXCLUSIVE and not keyed.try_lock(
        txn, status.target, status.invocation_id
    ):
        put_status(txn, replace(status, phase=Phase.INBOXED))
        keyed.enqueue(txn, status.target, status.invocation_id)
        return []
    running = replace(status, phase=Phase.RUNNING)
    put_status(txn, running)
    txn.put(keys.running_key(running.invocation_id), b"")
    return [start_of(txn, running)]


def complete_entry(
    txn: PartitionTxn, s: InvocationStatus, index: int, done: JournalEntry, at_ms: int
) -> list[Action]:
    """Records the outcome of a pending entry (got at ``at_ms``) and wakes its invocation."""
    put_entry(txn, s.invocation_id, index, done)
    timeline.entry_completed(txn, s.invocation_id, index, at_ms)
    notifications.record(txn, s.invocation_id, index, s.journal_length)
    if s.phase is not Phase.RUNNING:
        return []
    ack = AckEntry(s.invocation_id, s.retry_count, index, done)
    if s.suspended_on:
        # Both: the start resumes it if no task runs it, the ack wakes a task that does (one
        # started by a new leader, say); the invoker ignores whichever does not apply.
        resumed = replace(s, suspended_on=())
        put_status(txn, resumed)
        return [start_of(txn, resumed), ack]
    return [ack]


def disarm(txn: PartitionTxn, invocation_id: str, index: int, entry: JournalEntry) -> None:
    """Removes what a pending entry armed in this partition: a timer, a promise wait."""
    if entry.kind is EntryKind.SLEEP:
        txn.delete(keys.timer_key(int(entry.value or b"0"), invocation_id, index))


def finish(
    txn: PartitionTxn,
    s: InvocationStatus,
    now_ms: int,
    result: bytes | None,
    failure: Failure | None,
) -> list[Action]:
    """Ends an invocation with its outcome: answers its waiters and its caller, frees its key."""
    done = replace(
        s,
        phase=Phase.COMPLETED,
        result=result,
        failure=failure,
        completed_ms=now_ms,
        suspended_on=(),
    )
    put_status(txn, done)
    was_running = s.phase is Phase.RUNNING
    pending = pending_entries(txn, s.invocation_id) if s.journal_length else []
    for index, entry in pending:
        disarm(txn, s.invocation_id, index, entry)
        if entry.kind is EntryKind.GET_PROMISE and s.target.key is not None:
            txn.delete(
                keys.promise_waiter_key(
                    s.target.service, s.target.key, entry.name, s.invocation_id, index
                )
            )
    txn.delete(keys.running_key(s.invocation_id))
    ended = queries.status_of(done, now_ms)
    txn.put(keys.expiry_key(now_ms, s.invocation_id), ended.encode())
    actions: list[Action] = [outcome(done, w) for w in take_waiters(txn, s.invocation_id)]
    if s.caller is not None:
        actions.append(notify(s.caller, result, failure))
    actions.append(InvocationEnded(s.invocation_id, ended))
    if was_running and s.handler_kind is HandlerKind.EXCLUSIVE:
        actions.extend(next_in_line(txn, s))
    return actions


def next_in_line(txn: PartitionTxn, s: InvocationStatus) -> list[Action]:
    """Releases the object key and starts the next exclusive invocation waiting for it."""
    next_id = keyed.release(txn, s.target)
    if next_id is None:
        return []
    nxt = get_status(txn, next_id)
    if nxt is None:
        return []
    running = replace(nxt, phase=Phase.RUNNING)
    put_status(txn, running)
    txn.put(keys.running_key(next_id), b"")
    return [start_of(txn, running)]
