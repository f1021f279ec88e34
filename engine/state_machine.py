"""The deterministic state machine: ``apply(envelope, txn) -> actions``.

No I/O, no clock (time is the record's timestamp), no randomness. Applying the same log to an
empty store always yields the same store. Records that need leadership (journal proposals,
completions, sweeps) are accepted only with the current leader epoch: that is what fences
zombie workers (DESIGN.md invariant 3). Records from other partitions (call results, invocations
from calls) are deduplicated by their deterministic ids and entry indexes instead.
"""

from __future__ import annotations

from dataclasses import replace

from engine import codec, keyed, keys
from engine.errors import InvalidId
from engine.ids import parse_awakeable_id
from engine.model import (
    Caller,
    EntryKind,
    Failure,
    HandlerKind,
    InvocationStatus,
    JournalEntry,
    Phase,
    Reply,
    StateOp,
)
from engine.records import (
    AckEntry,
    Action,
    AnnounceLeader,
    Attach,
    AttemptFailed,
    CallResult,
    Cancel,
    Command,
    Complete,
    CompleteAwakeable,
    Deliver,
    Envelope,
    InvocationEnded,
    Invoke,
    LeadershipChanged,
    ProposeEntry,
    PurgeExpired,
    RegisterTimer,
    Response,
    ResponseStatus,
    ScheduleRetry,
    SendResponse,
    StartInvocation,
    Suspend,
    TimerFired,
)
from engine.storage import PartitionTxn


def leader(txn: PartitionTxn) -> tuple[int, str]:
    """The partition's current leader epoch and leader id (0 and "" before any leader)."""
    raw = txn.get(keys.META_LEADER)
    if raw is None:
        return 0, ""
    return keys.decode_int(raw[:8]), raw[8:].decode()


def get_status(txn: PartitionTxn, invocation_id: str) -> InvocationStatus | None:
    """An invocation's status, or None if the partition does not know it."""
    raw = txn.get(keys.status_key(invocation_id))
    return None if raw is None else codec.decode_status(raw)


def journal(txn: PartitionTxn, invocation_id: str) -> tuple[JournalEntry, ...]:
    """An invocation's journal, in order."""
    return tuple(codec.decode_entry(v) for _, v in txn.scan(keys.journal_prefix(invocation_id)))


def running_invocations(txn: PartitionTxn) -> list[StartInvocation]:
    """What a new leader must start: every running invocation, with its journal to replay."""
    out: list[StartInvocation] = []
    for key, _ in txn.scan(keys.RUNNING):
        status = get_status(txn, keys.id_of_running_key(key))
        if status is not None and status.phase is Phase.RUNNING and not status.suspended_on:
            out.append(_start(txn, status))  # suspended ones resume when what they wait for ends
    return out


def timers(txn: PartitionTxn) -> list[RegisterTimer]:
    """Every armed timer, earliest first: what a new leader must arm again."""
    out = []
    for key, _ in txn.scan(keys.TIMER):
        wake_at, invocation_id, index = keys.timer_of_key(key)
        out.append(RegisterTimer(wake_at, invocation_id, index))
    return out


def start_action(txn: PartitionTxn, invocation_id: str) -> StartInvocation | None:
    """The action that (re)starts a running invocation from its journal, or None if not running."""
    s = get_status(txn, invocation_id)
    if s is None or s.phase is not Phase.RUNNING:
        return None
    return _start(txn, s)


def outbox(txn: PartitionTxn) -> list[Deliver]:
    """Calls and sends whose callee has not confirmed them yet: a leader delivers them again."""
    return [_undelivered(value) for _, value in txn.scan(keys.OUTBOX)]


def apply(env: Envelope, txn: PartitionTxn) -> list[Action]:
    """Applies one log record to a partition's state and returns the actions it calls for."""
    c = env.command
    if isinstance(c, Invoke):
        return _invoke(env, c, txn)
    if isinstance(c, Attach):
        return _attach(c, txn)
    if isinstance(c, CallResult):
        return _call_result(c, txn)
    if isinstance(c, CompleteAwakeable):
        return _complete_awakeable(c, txn)
    if isinstance(c, Cancel):
        return _cancel(env, c, txn)
    if isinstance(c, AnnounceLeader):
        return _announce(env, c, txn)
    if env.epoch != leader(txn)[0]:
        return []  # a record of a deposed leader: fenced
    if isinstance(c, ProposeEntry):
        return _propose(env, c, txn)
    if isinstance(c, TimerFired):
        return _timer_fired(c, txn)
    if isinstance(c, Suspend):
        return _suspend(c, txn)
    if isinstance(c, Complete):
        return _complete(env, c, txn)
    if isinstance(c, AttemptFailed):
        return _attempt_failed(c, txn)
    if isinstance(c, PurgeExpired):
        return _purge(env, c, txn)
    return []


# --- helpers -----------------------------------------------------------------------------------


def _put(txn: PartitionTxn, status: InvocationStatus) -> None:
    txn.put(keys.status_key(status.invocation_id), codec.encode_status(status))


def _put_entry(txn: PartitionTxn, invocation_id: str, index: int, entry: JournalEntry) -> None:
    txn.put(keys.journal_key(invocation_id, index), codec.encode_entry(entry))


def _start(txn: PartitionTxn, s: InvocationStatus) -> StartInvocation:
    state: tuple[tuple[str, bytes], ...] = ()
    if s.target.key is not None:
        state = keyed.read_state(txn, s.target.service, s.target.key)
    return StartInvocation(
        s.invocation_id,
        s.target,
        s.input,
        journal(txn, s.invocation_id),
        s.retry_count,
        s.headers,
        s.handler_kind,
        state,
    )


def _outcome(s: InvocationStatus, reply: Reply) -> SendResponse:
    status = ResponseStatus.OK if s.failure is None else ResponseStatus.FAILED
    return SendResponse(
        reply, Response(reply.request_id, s.invocation_id, status, s.result, s.failure)
    )


def _answer(reply: Reply, invocation_id: str, status: ResponseStatus) -> SendResponse:
    return SendResponse(reply, Response(reply.request_id, invocation_id, status))


def _notify(caller: Caller, result: bytes | None, failure: Failure | None) -> Deliver:
    return Deliver(
        caller.invocation_id, CallResult(caller.invocation_id, caller.index, result, failure)
    )


def _with_waiter(s: InvocationStatus, reply: Reply) -> InvocationStatus:
    if any(w.request_id == reply.request_id for w in s.waiters):
        return s
    return replace(s, waiters=(*s.waiters, reply))


def _undelivered(value: bytes) -> Deliver:
    env = codec.decode_envelope(value, 0)
    assert isinstance(env.command, Invoke | CompleteAwakeable | Cancel)
    return Deliver(env.command.invocation_id, env.command)


# --- invocations -------------------------------------------------------------------------------


def _invoke(env: Envelope, c: Invoke, txn: PartitionTxn) -> list[Action]:
    existing = get_status(txn, c.invocation_id)
    if existing is not None:
        return _invoke_again(c, existing, txn)
    status = InvocationStatus(
        invocation_id=c.invocation_id,
        target=c.target,
        input=c.input,
        phase=Phase.RUNNING,
        created_ms=env.timestamp_ms,
        idempotency_key=c.idempotency_key,
        waiters=(c.reply,) if c.reply is not None and not c.send else (),
        headers=c.headers,
        handler_kind=c.handler_kind,
        caller=None if c.send else c.caller,
    )
    actions: list[Action] = []
    if c.send and c.reply is not None:
        actions.append(_answer(c.reply, c.invocation_id, ResponseStatus.ACCEPTED))
    if c.send and c.caller is not None:
        actions.append(_notify(c.caller, None, None))  # the caller's send is delivered
    if c.delay_ms > 0:
        at = env.timestamp_ms + c.delay_ms
        _put(txn, replace(status, phase=Phase.SCHEDULED, execute_at_ms=at))
        txn.put(keys.timer_key(at, c.invocation_id, keys.SCHEDULED_START), b"")
        return [*actions, RegisterTimer(at, c.invocation_id, keys.SCHEDULED_START)]
    return _begin(txn, status) + actions


def _begin(txn: PartitionTxn, status: InvocationStatus) -> list[Action]:
    """Starts a new invocation, or queues it behind its key's exclusive invocation."""
    c = status
    if c.handler_kind is HandlerKind.EXCLUSIVE and not keyed.try_lock(
        txn, c.target, c.invocation_id
    ):
        _put(txn, replace(status, phase=Phase.INBOXED))
        keyed.enqueue(txn, c.target, c.invocation_id)
        return []
    status = replace(status, phase=Phase.RUNNING)
    _put(txn, status)
    txn.put(keys.running_key(c.invocation_id), b"")
    return [_start(txn, status)]


def _invoke_again(c: Invoke, existing: InvocationStatus, txn: PartitionTxn) -> list[Action]:
    """The same invocation again: an idempotency key or workflow id reused, or a redelivery."""
    actions: list[Action] = []
    if c.caller is not None:
        if c.send:
            actions.append(_notify(c.caller, None, None))
        elif existing.phase is Phase.COMPLETED:
            actions.append(_notify(c.caller, existing.result, existing.failure))
    if c.reply is None:
        return actions
    if c.send:
        actions.append(_answer(c.reply, c.invocation_id, ResponseStatus.PREVIOUSLY_ACCEPTED))
    elif existing.phase is Phase.COMPLETED:
        actions.append(_outcome(existing, c.reply))
    else:
        _put(txn, _with_waiter(existing, c.reply))
    return actions


def _attach(c: Attach, txn: PartitionTxn) -> list[Action]:
    s = get_status(txn, c.invocation_id)
    if s is None:
        return [_answer(c.reply, c.invocation_id, ResponseStatus.NOT_FOUND)]
    if s.phase is Phase.COMPLETED:
        return [_outcome(s, c.reply)]
    if not c.block:
        return [_answer(c.reply, c.invocation_id, ResponseStatus.NOT_READY)]
    _put(txn, _with_waiter(s, c.reply))
    return []


def _announce(env: Envelope, c: AnnounceLeader, txn: PartitionTxn) -> list[Action]:
    epoch, _ = leader(txn)
    if env.epoch <= epoch:
        return []  # a stale or concurrent claim: the earlier one in the log won
    txn.put(keys.META_LEADER, keys.encode_int(env.epoch) + c.leader_id.encode())
    return [LeadershipChanged(c.leader_id, env.epoch)]


def _current_attempt(
    txn: PartitionTxn, invocation_id: str, attempt: int
) -> InvocationStatus | None:
    s = get_status(txn, invocation_id)
    if s is None or s.phase is not Phase.RUNNING or s.retry_count != attempt:
        return None  # an attempt that was superseded, or an invocation already done
    return s


# --- journal -----------------------------------------------------------------------------------


def _propose(env: Envelope, c: ProposeEntry, txn: PartitionTxn) -> list[Action]:
    s = _current_attempt(txn, c.invocation_id, c.attempt)
    if s is None or c.index != s.journal_length:
        return []  # a duplicate proposal or one out of turn
    _put(txn, replace(s, journal_length=s.journal_length + 1, cancel_requested=False))
    entry = c.entry
    kind = entry.kind
    if s.cancel_requested:
        # Cancelled while it ran a step: this entry is where the handler learns of it.
        failed = replace(entry, failure=CANCELLED, completed=True)
        _put_entry(txn, c.invocation_id, c.index, failed)
        return [AckEntry(c.invocation_id, c.attempt, c.index, failed)]
    if kind is EntryKind.CALL or kind is EntryKind.SEND:
        return _propose_call(s, c.index, entry, txn)
    if kind in (EntryKind.GET_PROMISE, EntryKind.PEEK_PROMISE, EntryKind.COMPLETE_PROMISE):
        return _propose_promise(s, c.index, entry, txn)
    if kind is EntryKind.SLEEP:
        return _propose_sleep(env, s, c.index, entry, txn)
    if kind is EntryKind.AWAKEABLE:
        pending = replace(entry, completed=False)
        _put_entry(txn, c.invocation_id, c.index, pending)
        return [AckEntry(c.invocation_id, c.attempt, c.index, pending)]
    if kind is EntryKind.COMPLETE_AWAKEABLE:
        return _propose_complete_awakeable(s, c.index, entry, txn)
    if kind is EntryKind.CANCEL_INVOCATION:
        command: Command = Cancel(entry.name, caller=Caller(s.invocation_id, c.index))
        return _via_outbox(s, c.index, entry, command, txn)
    _put_entry(txn, c.invocation_id, c.index, entry)
    return [AckEntry(c.invocation_id, c.attempt, c.index)]


def _propose_call(
    s: InvocationStatus, index: int, entry: JournalEntry, txn: PartitionTxn
) -> list[Action]:
    call = entry.call
    if call is None:
        failed = replace(entry, failure=Failure(500, "a call entry without a target"))
        _put_entry(txn, s.invocation_id, index, failed)
        return [AckEntry(s.invocation_id, s.retry_count, index, failed)]
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
        _put_entry(txn, s.invocation_id, index, done)
        return [deliver, AckEntry(s.invocation_id, s.retry_count, index, done)]
    _put_entry(txn, s.invocation_id, index, replace(entry, completed=False))
    return [deliver]


def _propose_sleep(
    env: Envelope, s: InvocationStatus, index: int, entry: JournalEntry, txn: PartitionTxn
) -> list[Action]:
    try:
        duration = max(int(entry.value or b"0"), 0)
    except ValueError:
        duration = 0
    wake_at = env.timestamp_ms + duration  # time comes from the log, never from a clock
    armed = replace(entry, value=str(wake_at).encode(), completed=duration == 0)
    _put_entry(txn, s.invocation_id, index, armed)
    if duration == 0:
        return [AckEntry(s.invocation_id, s.retry_count, index, armed)]
    txn.put(keys.timer_key(wake_at, s.invocation_id, index), b"")
    return [RegisterTimer(wake_at, s.invocation_id, index)]


def _timer_fired(c: TimerFired, txn: PartitionTxn) -> list[Action]:
    s = get_status(txn, c.invocation_id)
    if s is None:
        return []
    if c.index == keys.SCHEDULED_START:
        if s.phase is not Phase.SCHEDULED or s.execute_at_ms is None:
            return []
        txn.delete(keys.timer_key(s.execute_at_ms, c.invocation_id, c.index))
        return _begin(txn, s)
    raw = txn.get(keys.journal_key(c.invocation_id, c.index))
    if raw is None:
        return []
    entry = codec.decode_entry(raw)
    if entry.completed or entry.kind is not EntryKind.SLEEP:
        return []
    txn.delete(keys.timer_key(int(entry.value or b"0"), c.invocation_id, c.index))
    return _complete_entry(txn, s, c.index, replace(entry, completed=True))


def _complete_entry(
    txn: PartitionTxn, s: InvocationStatus, index: int, done: JournalEntry
) -> list[Action]:
    """Records the outcome of a pending entry and wakes its invocation (or resumes it)."""
    _put_entry(txn, s.invocation_id, index, done)
    if s.phase is not Phase.RUNNING:
        return []
    if s.suspended_on:
        resumed = replace(s, suspended_on=())
        _put(txn, resumed)
        return [_start(txn, resumed)]
    return [AckEntry(s.invocation_id, s.retry_count, index, done)]


def _suspend(c: Suspend, txn: PartitionTxn) -> list[Action]:
    s = _current_attempt(txn, c.invocation_id, c.attempt)
    if s is None or s.suspended_on:
        return []
    for index in c.waiting_on:
        raw = txn.get(keys.journal_key(c.invocation_id, index))
        if raw is None or codec.decode_entry(raw).completed:
            return [_start(txn, s)]  # what it waits for came meanwhile: resume at once
    _put(txn, replace(s, suspended_on=tuple(c.waiting_on) or (s.journal_length,)))
    return []


def _propose_complete_awakeable(
    s: InvocationStatus, index: int, entry: JournalEntry, txn: PartitionTxn
) -> list[Action]:
    try:
        target_id, target_index = parse_awakeable_id(entry.name)
    except InvalidId:
        done = replace(entry, value=None, failure=Failure(404, f"no awakeable {entry.name!r}"))
        _put_entry(txn, s.invocation_id, index, done)
        return [AckEntry(s.invocation_id, s.retry_count, index, done)]
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
    _put_entry(txn, s.invocation_id, index, replace(entry, completed=False))
    return [Deliver(command.invocation_id, command)]


CANCELLED = Failure(409, "the invocation was cancelled")
KILLED = Failure(409, "the invocation was killed")


def _cancel(env: Envelope, c: Cancel, txn: PartitionTxn) -> list[Action]:
    s = get_status(txn, c.invocation_id)
    outcome: Failure | None = None
    actions: list[Action] = []
    if s is None:
        outcome = Failure(404, f"invocation {c.invocation_id} not found")
    elif s.phase is Phase.COMPLETED:
        outcome = Failure(409, f"invocation {c.invocation_id} has already completed")
    elif c.kill or s.phase is not Phase.RUNNING:
        actions = _end_now(env, txn, s, KILLED if c.kill else CANCELLED, c.kill)
    else:
        actions = _cancel_running(txn, s)
    if c.reply is not None:
        status = ResponseStatus.ACCEPTED if outcome is None else ResponseStatus.FAILED
        response = Response(c.reply.request_id, c.invocation_id, status, None, outcome)
        actions.append(SendResponse(c.reply, response))
    if c.caller is not None:
        actions.append(_notify(c.caller, b"true" if outcome is None else None, outcome))
    return actions


def _pending_entries(txn: PartitionTxn, invocation_id: str) -> list[tuple[int, JournalEntry]]:
    prefix = keys.journal_prefix(invocation_id)
    out = []
    for key, raw in txn.scan(prefix):
        entry = codec.decode_entry(raw)
        if not entry.completed:
            out.append((int.from_bytes(key[len(prefix) :], "big"), entry))
    return out


def _abandon(
    txn: PartitionTxn, invocation_id: str, index: int, entry: JournalEntry, kill: bool
) -> list[Action]:
    """Stops what a pending entry waits for: cancels (or kills) a call, disarms a sleep."""
    if entry.kind is EntryKind.CALL and entry.call is not None:
        txn.delete(keys.outbox_key(invocation_id, index))
        return [Deliver(entry.call.callee_id, Cancel(entry.call.callee_id, kill))]
    if entry.kind is EntryKind.SLEEP:
        txn.delete(keys.timer_key(int(entry.value or b"0"), invocation_id, index))
    return []


def _cancel_running(txn: PartitionTxn, s: InvocationStatus) -> list[Action]:
    pending = _pending_entries(txn, s.invocation_id)
    if not pending:
        _put(txn, replace(s, cancel_requested=True))
        return []
    actions: list[Action] = []
    for index, entry in pending:
        actions.extend(_abandon(txn, s.invocation_id, index, entry, kill=False))
    first, entry = pending[0]
    # The handler learns of it where it waits; the other pending entries fail the same way.
    for index, other in pending[1:]:
        _put_entry(txn, s.invocation_id, index, replace(other, failure=CANCELLED, completed=True))
    failed = replace(entry, failure=CANCELLED, completed=True)
    actions.extend(_complete_entry(txn, s, first, failed))
    return actions


def _end_now(
    env: Envelope, txn: PartitionTxn, s: InvocationStatus, failure: Failure, kill: bool
) -> list[Action]:
    """Ends an invocation without running anything more (a kill, or a cancel before it ran)."""
    actions: list[Action] = []
    if s.phase is Phase.SCHEDULED and s.execute_at_ms is not None:
        txn.delete(keys.timer_key(s.execute_at_ms, s.invocation_id, keys.SCHEDULED_START))
    if s.phase is Phase.INBOXED and s.target.key is not None:
        keyed.dequeue(txn, s.target, s.invocation_id)
    was_running = s.phase is Phase.RUNNING
    if was_running:
        for index, entry in _pending_entries(txn, s.invocation_id):
            actions.extend(_abandon(txn, s.invocation_id, index, entry, kill))
    done = replace(
        s,
        phase=Phase.COMPLETED,
        failure=failure,
        completed_ms=env.timestamp_ms,
        waiters=(),
        suspended_on=(),
    )
    _put(txn, done)
    txn.delete(keys.running_key(s.invocation_id))
    txn.put(keys.expiry_key(env.timestamp_ms, s.invocation_id), b"")
    actions.extend(_outcome(done, w) for w in s.waiters)
    if s.caller is not None:
        actions.append(_notify(s.caller, None, failure))
    actions.append(InvocationEnded(s.invocation_id))
    if was_running and s.handler_kind is HandlerKind.EXCLUSIVE:
        actions.extend(_next_in_line(txn, s))
    return actions


def _complete_awakeable(c: CompleteAwakeable, txn: PartitionTxn) -> list[Action]:
    s = get_status(txn, c.invocation_id)
    raw = txn.get(keys.journal_key(c.invocation_id, c.index))
    entry = None if raw is None else codec.decode_entry(raw)
    failure: Failure | None = None
    actions: list[Action] = []
    if s is None or entry is None or entry.kind is not EntryKind.AWAKEABLE:
        failure = Failure(404, "awakeable not found")
    elif entry.completed:
        failure = Failure(409, "the awakeable was already completed")
    else:
        done = replace(entry, value=c.value, failure=c.failure, completed=True)
        actions.extend(_complete_entry(txn, s, c.index, done))
    if c.reply is not None:
        status = ResponseStatus.OK if failure is None else ResponseStatus.FAILED
        response = Response(c.reply.request_id, c.invocation_id, status, None, failure)
        actions.append(SendResponse(c.reply, response))
    if c.caller is not None:
        actions.append(_notify(c.caller, b"true" if failure is None else None, failure))
    return actions


def _call_result(c: CallResult, txn: PartitionTxn) -> list[Action]:
    outbox_key = keys.outbox_key(c.invocation_id, c.index)
    if txn.get(outbox_key) is None:
        return []  # already settled: a redelivered result
    txn.delete(outbox_key)
    s = get_status(txn, c.invocation_id)
    raw = txn.get(keys.journal_key(c.invocation_id, c.index))
    if s is None or raw is None:
        return []
    entry = codec.decode_entry(raw)
    if entry.completed:
        return []  # a send's receipt
    done = replace(entry, value=c.result, failure=c.failure, completed=True)
    return _complete_entry(txn, s, c.index, done)


def _propose_promise(
    s: InvocationStatus, index: int, entry: JournalEntry, txn: PartitionTxn
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
            actions.extend(_wake_promise_waiters(txn, service, key, entry.name, resolved))
            done = replace(entry, value=b"true", failure=None)
    elif current is not None:
        done = replace(entry, value=current.value, failure=current.failure)
    elif entry.kind is EntryKind.PEEK_PROMISE:
        done = replace(entry, value=None, failure=None)
    else:  # wait for it
        _put_entry(txn, s.invocation_id, index, replace(entry, completed=False))
        txn.put(keys.promise_waiter_key(service, key, entry.name, s.invocation_id, index), b"")
        return actions
    done = replace(done, completed=True)
    _put_entry(txn, s.invocation_id, index, done)
    actions.append(AckEntry(s.invocation_id, s.retry_count, index, done))
    return actions


def _wake_promise_waiters(
    txn: PartitionTxn, service: str, key: str, name: str, resolved: JournalEntry
) -> list[Action]:
    actions: list[Action] = []
    prefix = keys.promise_waiter_prefix(service, key, name)
    for waiter_key, _ in list(txn.scan(prefix)):
        txn.delete(waiter_key)
        invocation_id, index = keys.waiter_of_key(waiter_key, prefix)
        raw = txn.get(keys.journal_key(invocation_id, index))
        s = get_status(txn, invocation_id)
        if raw is None or s is None:
            continue
        done = replace(
            codec.decode_entry(raw), value=resolved.value, failure=resolved.failure, completed=True
        )
        actions.extend(_complete_entry(txn, s, index, done))
    return actions


# --- the end of an invocation ------------------------------------------------------------------


def _complete(env: Envelope, c: Complete, txn: PartitionTxn) -> list[Action]:
    s = _current_attempt(txn, c.invocation_id, c.attempt)
    if s is None:
        return []
    done = replace(
        s,
        phase=Phase.COMPLETED,
        result=c.result,
        failure=c.failure,
        completed_ms=env.timestamp_ms,
        waiters=(),
    )
    _put(txn, done)
    txn.delete(keys.running_key(c.invocation_id))
    txn.put(keys.expiry_key(env.timestamp_ms, c.invocation_id), b"")
    actions: list[Action] = [_outcome(done, w) for w in s.waiters]
    if s.caller is not None:
        actions.append(_notify(s.caller, c.result, c.failure))
    if s.target.key is not None and s.handler_kind in (HandlerKind.EXCLUSIVE, HandlerKind.WORKFLOW):
        ops: list[StateOp] = [op for e in journal(txn, c.invocation_id) for op in e.state_ops]
        keyed.apply_state_ops(txn, s.target.service, s.target.key, [*ops, *c.state_ops])
    actions.append(InvocationEnded(c.invocation_id))
    if s.handler_kind is HandlerKind.EXCLUSIVE:
        actions.extend(_next_in_line(txn, s))
    return actions


def _next_in_line(txn: PartitionTxn, s: InvocationStatus) -> list[Action]:
    """Releases the object key and starts the next exclusive invocation waiting for it."""
    next_id = keyed.release(txn, s.target)
    if next_id is None:
        return []
    nxt = get_status(txn, next_id)
    if nxt is None:
        return []
    running = replace(nxt, phase=Phase.RUNNING)
    _put(txn, running)
    txn.put(keys.running_key(next_id), b"")
    return [_start(txn, running)]


def _attempt_failed(c: AttemptFailed, txn: PartitionTxn) -> list[Action]:
    s = _current_attempt(txn, c.invocation_id, c.attempt)
    if s is None:
        return []
    _put(txn, replace(s, retry_count=s.retry_count + 1, last_error=c.message))
    return [ScheduleRetry(c.invocation_id, s.retry_count + 1, c.retry_in_ms)]


def _purge(env: Envelope, c: PurgeExpired, txn: PartitionTxn) -> list[Action]:
    cutoff = env.timestamp_ms - c.retention_ms
    if cutoff <= 0:
        return []
    expired = list(txn.scan(keys.EXPIRY, end=keys.EXPIRY + cutoff.to_bytes(8, "big")))
    for key, _ in expired:
        _, invocation_id = keys.id_of_expiry_key(key)
        txn.delete(key)
        s = get_status(txn, invocation_id)
        txn.delete(keys.status_key(invocation_id))
        for entry_key, _ in list(txn.scan(keys.journal_prefix(invocation_id))):
            txn.delete(entry_key)
        if s is not None and s.handler_kind is HandlerKind.WORKFLOW and s.target.key is not None:
            keyed.forget_workflow(txn, s.target.service, s.target.key)
    return []
