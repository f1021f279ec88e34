"""The order in which an invocation's pending entries completed.

A handler that races two awaitables (a Restate SDK's ``RestatePromise.race``, ``any``) takes the
branch of whichever completion it is told of first. A replay must tell it in the same order, or
the replay takes another branch than the run it replays. The journal holds entries in the order
the handler made them, not the order they completed, so the partition records that order too:
each completion of a pending entry (a timer, a call's result, a promise, a signal) gets the next
number of its invocation, with the journal's length at that moment. A Restate SDK's replay then
puts each notification after the command it followed (partitions/remote/journal.py), as
Restate's own journal does. Entries completed when they were journaled (a step's result) need
no record: they follow their command.

Layout (part of the store's byte format): under :func:`engine.keys.notified_prefix`, the prefix
key itself holds the count so far (4 bytes); each completion's key adds its number (4 bytes)
and holds the entry's index and the journal's length then (4 bytes each).
"""

from __future__ import annotations

from perdure.engine import keys
from perdure.engine.storage import PartitionReader, PartitionTxn


def record(txn: PartitionTxn, invocation_id: str, index: int, journal_length: int) -> None:
    """Entry ``index`` completed now, when the journal held ``journal_length`` entries."""
    counter = keys.notified_prefix(invocation_id)
    raw = txn.get(counter)
    seq = 0 if raw is None else int.from_bytes(raw, "big")
    txn.put(counter, (seq + 1).to_bytes(4, "big"))
    value = index.to_bytes(4, "big") + journal_length.to_bytes(4, "big")
    txn.put(keys.notified_key(invocation_id, seq), value)


def order(view: PartitionReader, invocation_id: str) -> tuple[tuple[int, int], ...]:
    """(entry index, journal length then) of each completion, in the order they came."""
    prefix = keys.notified_prefix(invocation_id)
    out = []
    for key, value in view.scan(prefix):
        if len(key) == len(prefix):
            continue  # the count
        out.append((int.from_bytes(value[:4], "big"), int.from_bytes(value[4:8], "big")))
    return tuple(out)
