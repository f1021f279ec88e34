"""Keyed services: per-key state, the exclusive lock and the per-key inbox (FIFO).

An object key is held by at most one exclusive invocation; the others wait in the key's inbox in
the order the log delivered them (DESIGN.md invariant 5). State changes of an invocation become
visible all at once, when it completes.
"""

from __future__ import annotations

from collections.abc import Iterable

from perdure.engine import keys
from perdure.engine.model import StateOp, StateOpKind, Target
from perdure.engine.storage import PartitionReader, PartitionTxn


def read_state(txn: PartitionReader, service: str, key: str) -> tuple[tuple[str, bytes], ...]:
    """All state entries of an object or workflow, by name."""
    prefix = keys.state_prefix(service, key)
    return tuple((keys.name_of_state_key(k, prefix), v) for k, v in txn.scan(prefix))


def apply_state_ops(txn: PartitionTxn, service: str, key: str, ops: Iterable[StateOp]) -> None:
    """Applies state changes in order."""
    for op in ops:
        if op.kind is StateOpKind.SET and op.value is not None:
            txn.put(keys.state_key(service, key, op.name), op.value)
        elif op.kind is StateOpKind.CLEAR:
            txn.delete(keys.state_key(service, key, op.name))
        elif op.kind is StateOpKind.CLEAR_ALL:
            for k, _ in list(txn.scan(keys.state_prefix(service, key))):
                txn.delete(k)


def try_lock(txn: PartitionTxn, target: Target, invocation_id: str) -> bool:
    """Takes the key for ``invocation_id`` if nobody holds it."""
    lock = keys.lock_key(target.service, target.key or "")
    if txn.get(lock) is not None:
        return False
    txn.put(lock, invocation_id.encode())
    return True


def _ends(txn: PartitionTxn, service: str, key: str) -> tuple[int, int]:
    raw = txn.get(keys.inbox_ends_key(service, key))
    return (0, 0) if raw is None else (keys.decode_int(raw[:8]), keys.decode_int(raw[8:]))


def _set_ends(txn: PartitionTxn, service: str, key: str, head: int, tail: int) -> None:
    if head >= tail:
        txn.delete(keys.inbox_ends_key(service, key))
    else:
        txn.put(keys.inbox_ends_key(service, key), keys.encode_int(head) + keys.encode_int(tail))


def enqueue(txn: PartitionTxn, target: Target, invocation_id: str) -> None:
    """Puts an invocation at the back of its key's inbox."""
    service, key = target.service, target.key or ""
    head, tail = _ends(txn, service, key)
    txn.put(keys.inbox_key(service, key, tail), invocation_id.encode())
    _set_ends(txn, service, key, head, tail + 1)


def release(txn: PartitionTxn, target: Target) -> str | None:
    """Hands the key to the head of its inbox (returned), or frees it.

    Reads the head by its sequence number instead of scanning: a hot key's inbox would
    otherwise make every release step over the tombstones of all earlier ones.
    """
    service, key = target.service, target.key or ""
    head, tail = _ends(txn, service, key)
    while head < tail:
        inbox_key = keys.inbox_key(service, key, head)
        value = txn.get(inbox_key)
        head += 1
        if value is None:
            continue  # taken out by a cancellation
        txn.delete(inbox_key)
        _set_ends(txn, service, key, head, tail)
        txn.put(keys.lock_key(service, key), value)
        return value.decode()
    _set_ends(txn, service, key, head, tail)
    txn.delete(keys.lock_key(service, key))
    return None


def dequeue(txn: PartitionTxn, target: Target, invocation_id: str) -> None:
    """Takes an invocation out of its key's inbox (it was cancelled before its turn)."""
    for inbox_key, value in list(txn.scan(keys.inbox_prefix(target.service, target.key or ""))):
        if value.decode() == invocation_id:
            txn.delete(inbox_key)


def forget_workflow(txn: PartitionTxn, service: str, key: str) -> None:
    """Drops a finished workflow's state and promises once its retention is over."""
    for prefix in (keys.state_prefix(service, key), keys.promise_prefix(service, key)):
        for k, _ in list(txn.scan(prefix)):
            txn.delete(k)
