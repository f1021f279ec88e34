"""The deterministic state machine: ``apply(envelope, txn) -> actions``.

No I/O, no clock (time is the record's timestamp), no randomness. Applying the same log to an
empty store always yields the same store. Records that need leadership (journal proposals,
completions, sweeps) are accepted only with the current leader epoch: that is what fences
zombie workers (DESIGN.md invariant 3).
"""

from __future__ import annotations

from dataclasses import replace

from engine import codec, keys
from engine.model import InvocationStatus, JournalEntry, Phase, Reply
from engine.records import (
    AckEntry,
    Action,
    AnnounceLeader,
    Attach,
    AttemptFailed,
    Complete,
    Envelope,
    InvocationEnded,
    Invoke,
    LeadershipChanged,
    ProposeEntry,
    PurgeExpired,
    Response,
    ResponseStatus,
    ScheduleRetry,
    SendResponse,
    StartInvocation,
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
        if status is not None and status.phase is Phase.RUNNING:
            out.append(_start(txn, status))
    return out


def apply(env: Envelope, txn: PartitionTxn) -> list[Action]:
    """Applies one log record to a partition's state and returns the actions it calls for."""
    c = env.command
    if isinstance(c, Invoke):
        return _invoke(env, c, txn)
    if isinstance(c, Attach):
        return _attach(c, txn)
    if isinstance(c, AnnounceLeader):
        return _announce(env, c, txn)
    if env.epoch != leader(txn)[0]:
        return []  # a record of a deposed leader: fenced
    if isinstance(c, ProposeEntry):
        return _propose(c, txn)
    if isinstance(c, Complete):
        return _complete(env, c, txn)
    if isinstance(c, AttemptFailed):
        return _attempt_failed(c, txn)
    if isinstance(c, PurgeExpired):
        return _purge(env, c, txn)
    return []


def _put(txn: PartitionTxn, status: InvocationStatus) -> None:
    txn.put(keys.status_key(status.invocation_id), codec.encode_status(status))


def _start(txn: PartitionTxn, s: InvocationStatus) -> StartInvocation:
    return StartInvocation(
        s.invocation_id, s.target, s.input, journal(txn, s.invocation_id), s.retry_count, s.headers
    )


def _outcome(s: InvocationStatus, reply: Reply) -> SendResponse:
    status = ResponseStatus.OK if s.failure is None else ResponseStatus.FAILED
    return SendResponse(
        reply, Response(reply.request_id, s.invocation_id, status, s.result, s.failure)
    )


def _answer(reply: Reply, invocation_id: str, status: ResponseStatus) -> SendResponse:
    return SendResponse(reply, Response(reply.request_id, invocation_id, status))


def _with_waiter(s: InvocationStatus, reply: Reply) -> InvocationStatus:
    if any(w.request_id == reply.request_id for w in s.waiters):
        return s
    return replace(s, waiters=(*s.waiters, reply))


def _invoke(env: Envelope, c: Invoke, txn: PartitionTxn) -> list[Action]:
    existing = get_status(txn, c.invocation_id)
    if existing is None:
        status = InvocationStatus(
            invocation_id=c.invocation_id,
            target=c.target,
            input=c.input,
            phase=Phase.RUNNING,
            created_ms=env.timestamp_ms,
            idempotency_key=c.idempotency_key,
            waiters=(c.reply,) if c.reply is not None and not c.send else (),
            headers=c.headers,
        )
        _put(txn, status)
        txn.put(keys.running_key(c.invocation_id), b"")
        actions: list[Action] = [_start(txn, status)]
        if c.send and c.reply is not None:
            actions.append(_answer(c.reply, c.invocation_id, ResponseStatus.ACCEPTED))
        return actions
    # The same invocation again: an idempotency key reused, or a record delivered twice.
    if c.reply is None:
        return []
    if c.send:
        return [_answer(c.reply, c.invocation_id, ResponseStatus.PREVIOUSLY_ACCEPTED)]
    if existing.phase is Phase.COMPLETED:
        return [_outcome(existing, c.reply)]
    _put(txn, _with_waiter(existing, c.reply))
    return []


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


def _propose(c: ProposeEntry, txn: PartitionTxn) -> list[Action]:
    s = _current_attempt(txn, c.invocation_id, c.attempt)
    if s is None or c.index != s.journal_length:
        return []  # a duplicate proposal or one out of turn
    txn.put(keys.journal_key(c.invocation_id, c.index), codec.encode_entry(c.entry))
    _put(txn, replace(s, journal_length=s.journal_length + 1))
    return [AckEntry(c.invocation_id, c.attempt, c.index)]


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
    actions.append(InvocationEnded(c.invocation_id))
    return actions


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
        txn.delete(keys.status_key(invocation_id))
        for entry_key, _ in list(txn.scan(keys.journal_prefix(invocation_id))):
            txn.delete(entry_key)
    return []


def start_action(txn: PartitionTxn, invocation_id: str) -> StartInvocation | None:
    """The action that (re)starts a running invocation from its journal, or None if not running."""
    s = get_status(txn, invocation_id)
    if s is None or s.phase is not Phase.RUNNING:
        return None
    return _start(txn, s)
