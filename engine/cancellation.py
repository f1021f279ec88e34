"""Cancelling and killing invocations, and the calls they wait for.

A cancel reaches a running handler at the await it is in (the pending entry fails with 409);
one that is between entries sees it at its next entry, and one backing off between attempts
sees it at its next attempt (an attempt that fails again ends it). A kill ends it at once.
Either way the calls it waits for are cancelled (or killed) too, through its outbox, so the
callee is reached even if a record is lost.
"""

from __future__ import annotations

from dataclasses import replace

from perdure.engine import codec, keyed, keys, receipts
from perdure.engine.lifecycle import complete_entry, disarm, finish
from perdure.engine.model import Caller, EntryKind, Failure, InvocationStatus, JournalEntry, Phase
from perdure.engine.records import Action, Cancel, Deliver, Envelope, ResponseStatus
from perdure.engine.status import get_status, pending_entries, put_entry, put_status, start_of
from perdure.engine.storage import PartitionTxn

CANCELLED = Failure(409, "the invocation was cancelled")
KILLED = Failure(409, "the invocation was killed")


def cancel(env: Envelope, c: Cancel, txn: PartitionTxn) -> list[Action]:
    """Applies a cancel or kill from the ingress or from another invocation's journal."""
    again = receipts.already_done(txn, c.invocation_id, c.caller)
    if again is not None:
        return again
    s = get_status(txn, c.invocation_id)
    failure: Failure | None = None
    actions: list[Action] = []
    if s is None:
        failure = Failure(404, f"invocation {c.invocation_id} not found")
    elif s.phase is Phase.COMPLETED:
        failure = Failure(409, f"invocation {c.invocation_id} has already completed")
    elif c.kill or s.phase is not Phase.RUNNING:
        actions = end_now(env, txn, s, KILLED if c.kill else CANCELLED, c.kill)
    else:
        actions = _cancel_running(txn, s, env.timestamp_ms)
    ok = ResponseStatus.ACCEPTED
    known = s is not None
    return actions + receipts.answer_both(
        txn, c.invocation_id, c.reply, c.caller, failure, ok, known
    )


def _abandon(
    txn: PartitionTxn, invocation_id: str, index: int, entry: JournalEntry, kill: bool
) -> list[Action]:
    """Stops what a pending entry waits for: cancels (or kills) a call, disarms a sleep."""
    disarm(txn, invocation_id, index, entry)
    if entry.kind is EntryKind.CALL and entry.call is not None:
        # Replaces the call in the outbox: delivered until the callee answers it.
        command = Cancel(entry.call.callee_id, kill, caller=Caller(invocation_id, index))
        txn.put(keys.outbox_key(invocation_id, index), codec.encode_envelope(Envelope(command)))
        return [Deliver(entry.call.callee_id, command)]
    return []


def _cancel_running(txn: PartitionTxn, s: InvocationStatus, at_ms: int) -> list[Action]:
    pending = pending_entries(txn, s.invocation_id)
    if not pending:
        cancelled = replace(s, cancel_requested=True)
        put_status(txn, cancelled)
        # Its next entry fails with the cancellation. The start cuts short a retry's back-off
        # (the invoker ignores it for an attempt that is executing already).
        return [start_of(txn, cancelled)]
    actions: list[Action] = []
    for index, entry in pending:
        actions.extend(_abandon(txn, s.invocation_id, index, entry, kill=False))
    first, entry = pending[0]
    # The handler learns of it where it waits; the other pending entries fail the same way.
    for index, other in pending[1:]:
        put_entry(txn, s.invocation_id, index, replace(other, failure=CANCELLED, completed=True))
    failed = replace(entry, failure=CANCELLED, completed=True)
    actions.extend(complete_entry(txn, s, first, failed, at_ms))
    return actions


def end_now(
    env: Envelope, txn: PartitionTxn, s: InvocationStatus, failure: Failure, kill: bool
) -> list[Action]:
    """Ends an invocation without running anything more (a kill, or a cancel before it ran)."""
    actions: list[Action] = []
    if s.phase is Phase.SCHEDULED and s.execute_at_ms is not None:
        txn.delete(keys.timer_key(s.execute_at_ms, s.invocation_id, keys.SCHEDULED_START))
    if s.phase is Phase.INBOXED and s.target.key is not None:
        keyed.dequeue(txn, s.target, s.invocation_id)
    if s.phase is Phase.RUNNING:
        for index, entry in pending_entries(txn, s.invocation_id):
            actions.extend(_abandon(txn, s.invocation_id, index, entry, kill))
    return actions + finish(txn, s, env.timestamp_ms, None, failure)
