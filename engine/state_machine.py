"""The deterministic state machine: ``apply(envelope, txn) -> actions``.

No I/O, no clock (time is the record's timestamp), no randomness. Applying the same log to an
empty store always yields the same store. Whether a record kind is fenced is a property of the
kind (:data:`FENCED`): records a leader writes (journal proposals, completions, timers, sweeps)
are accepted only with the current leader epoch, which is what fences zombie workers
(DESIGN.md invariant 3). Records from outside the partition (the ingress, other partitions) are
not fenced; they are deduplicated by deterministic ids, entry indexes and receipts instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from perdure.engine import (
    awakeables,
    backups,
    cancellation,
    codec,
    invocation_commands,
    journal_rules,
    keyed,
    keys,
    rejection,
    state_edits,
    timeline,
)
from perdure.engine.lifecycle import begin, finish
from perdure.engine.model import (
    HandlerKind,
    InvocationStatus,
    Phase,
)
from perdure.engine.records import (
    Action,
    AnnounceLeader,
    AnswerQuery,
    Attach,
    AttemptFailed,
    BackupTaken,
    CallResult,
    Cancel,
    Complete,
    CompleteAwakeable,
    Deliver,
    Detach,
    Envelope,
    Invoke,
    Invoked,
    LeadershipChanged,
    ProposeEntry,
    Purge,
    PurgeExpired,
    Query,
    RegisterTimer,
    ResponseStatus,
    RetryNow,
    ScheduleRetry,
    SetState,
    StartInvocation,
    Suspend,
    SweepAgain,
    TimerFired,
)
from perdure.engine.status import (
    add_waiter,
    answer,
    forget,
    get_entry,
    get_status,
    journal,
    notify,
    outcome,
    put_input,
    put_status,
    remove_waiter,
    start_of,
)
from perdure.engine.storage import PartitionReader, PartitionTxn

CANCELLED = cancellation.CANCELLED
KILLED = cancellation.KILLED

WRITERS = journal_rules.WRITERS

PURGE_BATCH = 500
"""Invocations one retention sweep record forgets at most: a sweep never stalls the processor."""

__all__ = [
    "CANCELLED",
    "FENCED",
    "KILLED",
    "UNFENCED",
    "apply",
    "get_status",
    "journal",
    "leader",
    "outbox",
    "running_invocations",
    "start_action",
    "timers",
]


def leader(txn: PartitionReader) -> tuple[int, str]:
    """The partition's current leader epoch and leader id (0 and "" before any leader)."""
    raw = txn.get(keys.META_LEADER)
    if raw is None:
        return 0, ""
    return keys.decode_int(raw[:8]), raw[8:].decode()


def running_invocations(txn: PartitionReader) -> list[StartInvocation]:
    """What a new leader must start: every running invocation, with its journal to replay.

    A suspended invocation is started too if what it waits for completed already (the start
    that should have resumed it may have been lost with the previous leader).
    """
    out: list[StartInvocation] = []
    for key, _ in txn.scan(keys.RUNNING):
        status = get_status(txn, keys.id_of_running_key(key))
        if status is None or status.phase is not Phase.RUNNING:
            continue
        if status.suspended_on and not _any_completed(txn, status):
            continue
        out.append(start_of(txn, status))
    return out


def _any_completed(txn: PartitionReader, s: InvocationStatus) -> bool:
    for index in s.suspended_on:
        entry = get_entry(txn, s.invocation_id, index)
        if entry is None or entry.completed:
            return True
    return False


def timers(txn: PartitionReader) -> list[RegisterTimer]:
    """Every armed timer, earliest first: what a new leader must arm again."""
    out = []
    for key, _ in txn.scan(keys.TIMER):
        wake_at, invocation_id, index = keys.timer_of_key(key)
        out.append(RegisterTimer(wake_at, invocation_id, index))
    return out


def timer_armed(txn: PartitionReader, wake_at_ms: int, invocation_id: str, index: int) -> bool:
    """Whether a timer is still armed (its :class:`TimerFired` has not been applied)."""
    return txn.get(keys.timer_key(wake_at_ms, invocation_id, index)) is not None


def start_action(txn: PartitionReader, invocation_id: str) -> StartInvocation | None:
    """The action that (re)starts a running invocation from its journal, or None if not running."""
    s = get_status(txn, invocation_id)
    if s is None or s.phase is not Phase.RUNNING or s.suspended_on:
        return None
    return start_of(txn, s)


def outbox(txn: PartitionReader) -> list[tuple[bytes, Deliver]]:
    """Commands whose receiver has not answered yet, by outbox key: a leader delivers them again."""
    out = []
    for key, value in txn.scan(keys.OUTBOX):
        env = codec.decode_envelope(value, 0)
        assert isinstance(env.command, Invoke | CompleteAwakeable | Cancel)
        out.append((key, Deliver(env.command.invocation_id, env.command)))
    return out


def apply(env: Envelope, txn: PartitionTxn, offset: int = -1) -> list[Action]:
    """Applies one log record to a partition's state and returns the actions it calls for.

    A record whose rule raises is rejected (engine/rejection.py): its writes are undone, what
    it belongs to ends with the error, and the rejection is kept at ``offset``. Deterministic
    like the rule itself, so every replica and replay decides the same (DESIGN.md invariant 7).
    """
    kind = type(env.command)
    rule = _RULES.get(kind)
    if rule is None:
        return []
    if kind in FENCED and env.epoch != leader(txn)[0]:
        return []  # a record of a deposed leader (or of none): fenced
    txn.savepoint()
    try:
        return rule(env, env.command, txn)
    except MemoryError:
        raise  # the machine's, not the record's: replaying it may well succeed
    except Exception as err:
        txn.rollback()
        return rejection.reject(env, txn, err, offset)


# --- invocations -------------------------------------------------------------------------------


def _invoke(env: Envelope, c: Invoke, txn: PartitionTxn) -> list[Action]:
    existing = get_status(txn, c.invocation_id)
    if existing is not None:
        return _invoke_again(c, existing, txn)
    status = InvocationStatus(
        invocation_id=c.invocation_id,
        target=c.target,
        phase=Phase.RUNNING,
        created_ms=env.timestamp_ms,
        idempotency_key=c.idempotency_key,
        headers=c.headers,
        handler_kind=c.handler_kind,
        caller=None if c.send else c.caller,
    )
    put_input(txn, c.invocation_id, c.input)
    if c.reply is not None and not c.send:
        add_waiter(txn, c.invocation_id, c.reply)
    actions: list[Action] = []
    if c.send and c.reply is not None:
        actions.append(answer(c.reply, c.invocation_id, ResponseStatus.ACCEPTED))
    if c.send and c.caller is not None:
        actions.append(notify(c.caller, None, None))  # the caller's send is delivered
    if c.delay_ms > 0:
        at = env.timestamp_ms + c.delay_ms
        put_status(txn, replace(status, phase=Phase.SCHEDULED, execute_at_ms=at))
        txn.put(keys.timer_key(at, c.invocation_id, keys.SCHEDULED_START), b"")
        invoked = Invoked(c.invocation_id, c.target, "scheduled")
        return [invoked, *actions, RegisterTimer(at, c.invocation_id, keys.SCHEDULED_START)]
    started = begin(txn, status)
    invoked = Invoked(c.invocation_id, c.target, "running" if started else "pending")
    return [invoked, *started, *actions]


def _invoke_again(c: Invoke, existing: InvocationStatus, txn: PartitionTxn) -> list[Action]:
    """The same invocation again: an idempotency key or workflow id reused, or a redelivery."""
    actions: list[Action] = []
    if c.caller is not None:
        if c.send:
            actions.append(notify(c.caller, None, None))
        elif existing.phase is Phase.COMPLETED:
            actions.append(notify(c.caller, existing.result, existing.failure))
    if c.reply is None:
        return actions
    if c.send:
        actions.append(answer(c.reply, c.invocation_id, ResponseStatus.PREVIOUSLY_ACCEPTED))
    elif existing.phase is Phase.COMPLETED:
        actions.append(outcome(existing, c.reply))
    else:
        add_waiter(txn, c.invocation_id, c.reply)
    return actions


def _attach(_env: Envelope, c: Attach, txn: PartitionTxn) -> list[Action]:
    s = get_status(txn, c.invocation_id)
    if s is None:
        return [answer(c.reply, c.invocation_id, ResponseStatus.NOT_FOUND)]
    if s.phase is Phase.COMPLETED:
        return [outcome(s, c.reply)]
    if not c.block:
        return [answer(c.reply, c.invocation_id, ResponseStatus.NOT_READY)]
    add_waiter(txn, c.invocation_id, c.reply)
    return []


def _detach(_env: Envelope, c: Detach, txn: PartitionTxn) -> list[Action]:
    remove_waiter(txn, c.invocation_id, c.request_id)
    return []


def _announce(env: Envelope, c: AnnounceLeader, txn: PartitionTxn) -> list[Action]:
    epoch, _ = leader(txn)
    if env.epoch <= epoch:
        return []  # a stale or concurrent claim: the earlier one in the log won
    txn.put(keys.META_LEADER, keys.encode_int(env.epoch) + c.leader_id.encode())
    return [LeadershipChanged(c.leader_id, env.epoch)]


# --- the end of an invocation ------------------------------------------------------------------


def _complete(env: Envelope, c: Complete, txn: PartitionTxn) -> list[Action]:
    s = journal_rules.current_attempt(txn, c.invocation_id, c.attempt)
    if s is None:
        return []
    if c.state_ops and s.handler_kind in WRITERS and s.target.key is not None:
        keyed.apply_state_ops(txn, s.target.service, s.target.key, c.state_ops)
    return finish(txn, s, env.timestamp_ms, c.result, c.failure)


def _attempt_failed(env: Envelope, c: AttemptFailed, txn: PartitionTxn) -> list[Action]:
    s = journal_rules.current_attempt(txn, c.invocation_id, c.attempt)
    if s is None:
        return []
    if s.cancel_requested:
        # Cancelled while backing off, and its next attempt failed before any new entry: no
        # more attempts (it could never see the cancellation otherwise).
        return cancellation.end_now(env, txn, s, CANCELLED, kill=False)
    # execute_at_ms of a running invocation: when its next attempt is due (for operators).
    due = env.timestamp_ms + c.retry_in_ms
    timeline.attempt_failed(txn, c.invocation_id, s.retry_count, env.timestamp_ms, c.message)
    put_status(
        txn, replace(s, retry_count=s.retry_count + 1, last_error=c.message, execute_at_ms=due)
    )
    return [ScheduleRetry(c.invocation_id, s.retry_count + 1, c.retry_in_ms)]


def _purge(env: Envelope, c: PurgeExpired, txn: PartitionTxn) -> list[Action]:
    cutoff = env.timestamp_ms - c.retention_ms
    if cutoff <= 0:
        return []
    end = keys.EXPIRY + cutoff.to_bytes(8, "big")
    batch = list(itertools.islice(txn.scan(keys.EXPIRY, end=end), PURGE_BATCH + 1))
    for key, _ in batch[:PURGE_BATCH]:
        _, invocation_id = keys.id_of_expiry_key(key)
        txn.delete(key)
        s = get_status(txn, invocation_id)
        forget(txn, invocation_id)
        if s is not None and s.handler_kind is HandlerKind.WORKFLOW and s.target.key is not None:
            keyed.forget_workflow(txn, s.target.service, s.target.key)
    return [SweepAgain()] if len(batch) > PURGE_BATCH else []


_Rule = Callable[[Envelope, Any, PartitionTxn], list[Action]]

_RULES: dict[type, _Rule] = {
    Invoke: _invoke,
    Attach: _attach,
    Detach: _detach,
    CallResult: journal_rules.call_result,
    CompleteAwakeable: awakeables.complete_awakeable,
    Cancel: cancellation.cancel,
    AnnounceLeader: _announce,
    ProposeEntry: journal_rules.propose,
    TimerFired: journal_rules.timer_fired,
    Suspend: journal_rules.suspend,
    Complete: _complete,
    AttemptFailed: _attempt_failed,
    PurgeExpired: _purge,
    BackupTaken: backups.backup_taken,
    Query: lambda _env, c, _txn: [AnswerQuery(c)],  # read by the leader, never during replay
    SetState: state_edits.set_state,
    Purge: invocation_commands.purge,
    RetryNow: invocation_commands.retry_now,
}

FENCED: frozenset[type] = frozenset(
    {ProposeEntry, TimerFired, Suspend, Complete, AttemptFailed, PurgeExpired, BackupTaken}
)
"""Kinds only the current leader writes: a record of another epoch is ignored."""

UNFENCED: frozenset[type] = frozenset(
    {
        Invoke,
        Attach,
        Detach,
        CallResult,
        CompleteAwakeable,
        Cancel,
        AnnounceLeader,
        Query,
        SetState,
        Purge,
        RetryNow,
    }
)
"""Kinds written from outside the partition (epoch 0), or a leader's claim (checked itself)."""
