"""An invocation's records in a partition's store: status, input, journal, waiters.

The status is rewritten at every step, so it holds only what changes; the input (up to the
ingress's body limit) is written once, and each waiting request is a key of its own, so that a
waiter is added or removed without rewriting anything else.
"""

from __future__ import annotations

from perdure.engine import codec, keyed, keys, notifications
from perdure.engine.model import Caller, Failure, InvocationStatus, JournalEntry, Reply
from perdure.engine.records import (
    CallResult,
    Deliver,
    Response,
    ResponseStatus,
    SendResponse,
    StartInvocation,
)
from perdure.engine.storage import PartitionReader, PartitionTxn


def get_status(txn: PartitionReader, invocation_id: str) -> InvocationStatus | None:
    """An invocation's status, or None if the partition does not know it."""
    raw = txn.get(keys.status_key(invocation_id))
    return None if raw is None else codec.decode_status(raw, txn.statuses)


def put_status(txn: PartitionTxn, status: InvocationStatus) -> None:
    """Writes an invocation's status."""
    txn.put(keys.status_key(status.invocation_id), codec.encode_status(status, txn.statuses))


def put_input(txn: PartitionTxn, invocation_id: str, data: bytes) -> None:
    """Stores an invocation's input (once, when it is first invoked); an empty one is not
    stored at all (a start reads a missing input as empty)."""
    if data:
        txn.put(keys.input_key(invocation_id), data)


def journal(txn: PartitionReader, invocation_id: str) -> tuple[JournalEntry, ...]:
    """An invocation's journal, in order."""
    return tuple(codec.decode_entry(v) for _, v in txn.scan(keys.journal_prefix(invocation_id)))


def get_entry(txn: PartitionReader, invocation_id: str, index: int) -> JournalEntry | None:
    """Journal entry ``index``, or None."""
    raw = txn.get(keys.journal_key(invocation_id, index))
    return None if raw is None else codec.decode_entry(raw)


def put_entry(txn: PartitionTxn, invocation_id: str, index: int, entry: JournalEntry) -> None:
    """Writes journal entry ``index``."""
    txn.put(keys.journal_key(invocation_id, index), codec.encode_entry(entry))


def pending_entries(txn: PartitionTxn, invocation_id: str) -> list[tuple[int, JournalEntry]]:
    """The journal entries still waiting for their outcome, in index order."""
    prefix = keys.journal_prefix(invocation_id)
    out = []
    for key, raw in txn.scan(prefix):
        if not codec.entry_is_completed(raw):
            out.append((int.from_bytes(key[len(prefix) :], "big"), codec.decode_entry(raw)))
    return out


def add_waiter(txn: PartitionTxn, invocation_id: str, reply: Reply) -> None:
    """Registers a request that waits for the outcome (the same request twice is one waiter)."""
    txn.put(keys.waiter_key(invocation_id, reply.request_id), keys.encode_int(reply.partition))


def remove_waiter(txn: PartitionTxn, invocation_id: str, request_id: str) -> None:
    """Forgets a waiting request."""
    txn.delete(keys.waiter_key(invocation_id, request_id))


def take_waiters(txn: PartitionTxn, invocation_id: str) -> list[Reply]:
    """Every waiting request, removed from the store."""
    prefix = keys.waiter_prefix(invocation_id)
    out = []
    for key, value in list(txn.scan(prefix)):
        txn.delete(key)
        out.append(Reply(keys.decode_int(value), keys.request_of_waiter_key(key, prefix)))
    return out


def start_of(txn: PartitionReader, s: InvocationStatus) -> StartInvocation:
    """The action that runs (or re-runs, replaying its journal) a running invocation."""
    state: tuple[tuple[str, bytes], ...] = ()
    if s.target.key is not None:
        state = keyed.read_state(txn, s.target.service, s.target.key)
    return StartInvocation(
        s.invocation_id,
        s.target,
        txn.get(keys.input_key(s.invocation_id)) or b"",
        journal(txn, s.invocation_id) if s.journal_length else (),  # a first start: no scan
        s.retry_count,
        s.headers,
        s.handler_kind,
        state,
        notifications.order(txn, s.invocation_id) if s.journal_length else (),
    )


def outcome(s: InvocationStatus, reply: Reply) -> SendResponse:
    """The answer to ``reply`` with the completed invocation's result or failure."""
    status = ResponseStatus.OK if s.failure is None else ResponseStatus.FAILED
    return SendResponse(
        reply, Response(reply.request_id, s.invocation_id, status, s.result, s.failure)
    )


def answer(reply: Reply, invocation_id: str, status: ResponseStatus) -> SendResponse:
    """A bare answer (accepted, not found, ...) to ``reply``."""
    return SendResponse(reply, Response(reply.request_id, invocation_id, status))


def notify(caller: Caller, result: bytes | None, failure: Failure | None) -> Deliver:
    """The outcome for journal entry ``caller.index`` of another invocation."""
    return Deliver(
        caller.invocation_id, CallResult(caller.invocation_id, caller.index, result, failure)
    )


def forget(txn: PartitionTxn, invocation_id: str) -> None:
    """Deletes everything the partition keeps of an invocation."""
    txn.delete(keys.status_key(invocation_id))
    txn.delete(keys.input_key(invocation_id))
    txn.delete(keys.running_key(invocation_id))
    for prefix in (
        keys.journal_prefix(invocation_id),
        keys.waiter_prefix(invocation_id),
        keys.receipt_prefix(invocation_id),
        keys.outbox_prefix(invocation_id),
        keys.timeline_prefix(invocation_id),
        keys.signal_prefix(invocation_id),
        keys.early_awakeable_prefix(invocation_id),
        keys.notified_prefix(invocation_id),
    ):
        for key, _ in list(txn.scan(prefix)):
            txn.delete(key)
