"""The rules of an invocation's journal: proposed entries, timers, suspensions, call results.

Part of :func:`perdure.engine.state_machine.apply` (its rule table names these); pure like it.
"""

from __future__ import annotations

from dataclasses import replace

from perdure.engine import (
    awakeables,
    cancellation,
    codec,
    keyed,
    keys,
    timeline,
)
from perdure.engine.errors import InvalidId
from perdure.engine.ids import InvocationId, parse_awakeable_id
from perdure.engine.lifecycle import begin, complete_entry, finish
from perdure.engine.model import (
    READ_KINDS,
    Caller,
    EntryKind,
    Failure,
    HandlerKind,
    InvocationStatus,
    JournalEntry,
    Phase,
)
from perdure.engine.records import (
    AckEntry,
    Action,
    CallResult,
    Cancel,
    Command,
    CompleteAwakeable,
    Deliver,
    Envelope,
    Invoke,
    ProposeEntry,
    RegisterTimer,
    Suspend,
    TimerFired,
)
from perdure.engine.status import (
    get_entry,
    get_status,
    put_entry,
    put_status,
    start_of,
)
from perdure.engine.storage import PartitionTxn

WRITERS = frozenset({HandlerKind.EXCLUSIVE, HandlerKind.WORKFLOW})
"""The handler kinds that may change their key's state (one at a time per key)."""


def current_attempt(txn: PartitionTxn, invocation_id: str, attempt: int) -> InvocationStatus | None:
    s = get_status(txn, invocation_id)
    if s is None or s.phase is not Phase.RUNNING or s.retry_count != attempt:
        return None  # an attempt that was superseded, or an invocation already done
    return s


def propose(env: Envelope, c: ProposeEntry, txn: PartitionTxn) -> list[Action]:
    s = current_attempt(txn, c.invocation_id, c.attempt)
    if s is None or c.index != s.journal_length:
        return []  # a duplicate proposal or one out of turn
    put_status(txn, replace(s, journal_length=s.journal_length + 1, cancel_requested=False))
    timeline.entry_journaled(txn, c.invocation_id, c.index, env.timestamp_ms)
    entry = c.entry
    if entry.state_ops and s.target.key is not None:
        if s.handler_kind not in WRITERS and any(
            op.kind not in READ_KINDS for op in entry.state_ops
        ):
            # A shared handler runs beside the key's exclusive one: its writes would race it.
            failure = Failure(400, "a shared handler may not change state")
            return finish(txn, s, env.timestamp_ms, None, failure)
        # Durable in the journal, so visible to shared handlers from now on (as in Restate).
        keyed.apply_state_ops(txn, s.target.service, s.target.key, entry.state_ops)
    kind = entry.kind
    if s.cancel_requested:
        # Cancelled while it ran a step: this entry is where the handler learns of it.
        failed = replace(entry, failure=cancellation.CANCELLED, completed=True)
        put_entry(txn, c.invocation_id, c.index, failed)
        return [AckEntry(c.invocation_id, c.attempt, c.index, failed)]
    if kind is EntryKind.CALL or kind is EntryKind.SEND:
        return _propose_call(s, c.index, entry, txn)
    if kind in (EntryKind.GET_PROMISE, EntryKind.PEEK_PROMISE, EntryKind.COMPLETE_PROMISE):
        return _propose_promise(env.timestamp_ms, s, c.index, entry, txn)
    if kind is EntryKind.SLEEP:
        return _propose_sleep(env, s, c.index, entry, txn)
    if kind is EntryKind.AWAKEABLE:
        early = awakeables.take_early(txn, c.invocation_id, c.index, entry)
        pending = early or replace(entry, completed=False)
        put_entry(txn, c.invocation_id, c.index, pending)
        return [AckEntry(c.invocation_id, c.attempt, c.index, pending)]
    if kind is EntryKind.COMPLETE_AWAKEABLE:
        return _propose_complete_awakeable(s, c.index, entry, txn)
    if kind is EntryKind.CANCEL_INVOCATION:
        return _propose_cancel(s, c.index, entry, txn)
    put_entry(txn, c.invocation_id, c.index, entry)
    return [AckEntry(c.invocation_id, c.attempt, c.index, entry)]


def _fail_entry(
    txn: PartitionTxn, s: InvocationStatus, index: int, entry: JournalEntry, failure: Failure
) -> list[Action]:
    done = replace(entry, value=None, failure=failure, completed=True)
    put_entry(txn, s.invocation_id, index, done)
    return [AckEntry(s.invocation_id, s.retry_count, index, done)]


def _propose_call(
    s: InvocationStatus, index: int, entry: JournalEntry, txn: PartitionTxn
) -> list[Action]:
    call = entry.call
    if call is None:
        return _fail_entry(txn, s, index, entry, Failure(500, "a call entry without a target"))
    send = entry.kind is EntryKind.SEND
    invoke = Invoke(
        call.callee_id,
        call.target,
        call.input,
        send=send,
        handler_kind=call.handler_kind,
        caller=Caller(s.invocation_id, index),
        delay_ms=call.delay_ms if send else 0,
    )
    txn.put(keys.outbox_key(s.invocation_id, index), codec.encode_envelope(Envelope(invoke)))
    deliver = Deliver(call.callee_id, invoke)
    if send:
        done = replace(entry, value=call.callee_id.encode(), completed=True)
        put_entry(txn, s.invocation_id, index, done)
        return [deliver, AckEntry(s.invocation_id, s.retry_count, index, done)]
    put_entry(txn, s.invocation_id, index, replace(entry, completed=False))
    return [deliver]


def _propose_cancel(
    s: InvocationStatus, index: int, entry: JournalEntry, txn: PartitionTxn
) -> list[Action]:
    try:
        InvocationId.parse(entry.name)
    except InvalidId as err:
        # A bad id from user code fails the step, never the partition (it is routed by it).
        return _fail_entry(txn, s, index, entry, Failure(400, str(err)))
    command = Cancel(entry.name, caller=Caller(s.invocation_id, index))
    return _via_outbox(s, index, entry, command, txn)


def _propose_sleep(
    env: Envelope, s: InvocationStatus, index: int, entry: JournalEntry, txn: PartitionTxn
) -> list[Action]:
    try:
        duration = max(int(entry.value or b"0"), 0)
    except ValueError:
        duration = 0
    wake_at = env.timestamp_ms + duration  # time comes from the log, never from a clock
    armed = replace(entry, value=str(wake_at).encode(), completed=duration == 0)
    put_entry(txn, s.invocation_id, index, armed)
    if duration == 0:
        return [AckEntry(s.invocation_id, s.retry_count, index, armed)]
    txn.put(keys.timer_key(wake_at, s.invocation_id, index), b"")
    return [RegisterTimer(wake_at, s.invocation_id, index)]


def timer_fired(env: Envelope, c: TimerFired, txn: PartitionTxn) -> list[Action]:
    s = get_status(txn, c.invocation_id)
    if s is None:
        return []
    if c.index == keys.SCHEDULED_START:
        if s.phase is not Phase.SCHEDULED or s.execute_at_ms is None:
            return []
        txn.delete(keys.timer_key(s.execute_at_ms, c.invocation_id, c.index))
        return begin(txn, s)
    entry = get_entry(txn, c.invocation_id, c.index)
    if entry is None or entry.completed or entry.kind is not EntryKind.SLEEP:
        return []
    txn.delete(keys.timer_key(int(entry.value or b"0"), c.invocation_id, c.index))
    return complete_entry(txn, s, c.index, replace(entry, completed=True), env.timestamp_ms)


def suspend(_env: Envelope, c: Suspend, txn: PartitionTxn) -> list[Action]:
    s = current_attempt(txn, c.invocation_id, c.attempt)
    if s is None:
        return []
    if not c.waiting_on:
        return [start_of(txn, s)]  # waits on nothing: suspending would sleep for ever
    for index in c.waiting_on:
        entry = get_entry(txn, c.invocation_id, index)
        if entry is None or entry.completed:
            return [start_of(txn, s)]  # what it waits for came meanwhile: resume at once
    put_status(txn, replace(s, suspended_on=tuple(c.waiting_on)))
    return []


def _propose_complete_awakeable(
    s: InvocationStatus, index: int, entry: JournalEntry, txn: PartitionTxn
) -> list[Action]:
    try:
        target_id, target_index = parse_awakeable_id(entry.name)
    except InvalidId:
        return _fail_entry(txn, s, index, entry, Failure(404, f"no awakeable {entry.name!r}"))
    command = CompleteAwakeable(
        target_id, target_index, entry.value, entry.failure, caller=Caller(s.invocation_id, index)
    )
    return _via_outbox(s, index, entry, command, txn)


def _via_outbox(
    s: InvocationStatus, index: int, entry: JournalEntry, command: Command, txn: PartitionTxn
) -> list[Action]:
    """Journals an entry that another partition completes; delivers its command until then."""
    assert isinstance(command, Invoke | CompleteAwakeable | Cancel)
    txn.put(keys.outbox_key(s.invocation_id, index), codec.encode_envelope(Envelope(command)))
    put_entry(txn, s.invocation_id, index, replace(entry, completed=False))
    return [Deliver(command.invocation_id, command)]


def call_result(env: Envelope, c: CallResult, txn: PartitionTxn) -> list[Action]:
    outbox_key = keys.outbox_key(c.invocation_id, c.index)
    if txn.get(outbox_key) is None:
        return []  # already settled: a redelivered result
    txn.delete(outbox_key)
    s = get_status(txn, c.invocation_id)
    entry = get_entry(txn, c.invocation_id, c.index)
    if s is None or entry is None or entry.completed:
        return []  # a send's receipt, or a cancel's answer after the entry failed already
    done = replace(entry, value=c.result, failure=c.failure, completed=True)
    return complete_entry(txn, s, c.index, done, env.timestamp_ms)


def _propose_promise(
    at_ms: int, s: InvocationStatus, index: int, entry: JournalEntry, txn: PartitionTxn
) -> list[Action]:
    service, key = s.target.service, s.target.key or ""
    promise_key = keys.promise_key(service, key, entry.name)
    raw = txn.get(promise_key)
    current = None if raw is None else codec.decode_entry(raw)
    actions: list[Action] = []
    if entry.kind is EntryKind.COMPLETE_PROMISE:
        if current is not None:
            done = replace(
                entry,
                value=None,
                failure=Failure(409, f"promise {entry.name!r} was already completed"),
            )
        else:
            resolved = JournalEntry(EntryKind.GET_PROMISE, entry.name, entry.value, entry.failure)
            txn.put(promise_key, codec.encode_entry(resolved))
            actions.extend(_wake_promise_waiters(at_ms, txn, service, key, entry.name, resolved))
            done = replace(entry, value=b"true", failure=None)
    elif current is not None:
        done = replace(entry, value=current.value, failure=current.failure)
    elif entry.kind is EntryKind.PEEK_PROMISE:
        done = replace(entry, value=None, failure=None)
    else:  # wait for it
        put_entry(txn, s.invocation_id, index, replace(entry, completed=False))
        txn.put(keys.promise_waiter_key(service, key, entry.name, s.invocation_id, index), b"")
        return actions
    done = replace(done, completed=True)
    put_entry(txn, s.invocation_id, index, done)
    actions.append(AckEntry(s.invocation_id, s.retry_count, index, done))
    return actions


def _wake_promise_waiters(
    at_ms: int, txn: PartitionTxn, service: str, key: str, name: str, resolved: JournalEntry
) -> list[Action]:
    actions: list[Action] = []
    prefix = keys.promise_waiter_prefix(service, key, name)
    for waiter_key, _ in list(txn.scan(prefix)):
        txn.delete(waiter_key)
        invocation_id, index = keys.waiter_of_key(waiter_key, prefix)
        entry = get_entry(txn, invocation_id, index)
        s = get_status(txn, invocation_id)
        if entry is None or s is None:
            continue
        done = replace(entry, value=resolved.value, failure=resolved.failure, completed=True)
        actions.extend(complete_entry(txn, s, index, done, at_ms))
    return actions
