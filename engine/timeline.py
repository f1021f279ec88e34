"""When things happened to an invocation, for the operators' journal timeline.

The journal says what an invocation did; the timeline says when: the log time at which each
entry was journaled and (for a call, a sleep, a promise or an awakeable) completed, and each
failed attempt with its error. It is written in the same batch as the change it times, from the
record's timestamp, so it is as durable and as deterministic as the journal itself. Nothing
reads it on the hot path; an invocation journaled by a worker older than this table has no
timeline, and its describe shows entries without times.

Value layout (part of the store's byte format, never changing meaning): an event key
(:func:`engine.keys.timeline_key`) holds the time in ms as 8 bytes, then, for a failed attempt,
the error's text in UTF-8 (at most :data:`ERROR_BYTES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perdure.engine import keys
from perdure.engine.storage import PartitionReader, PartitionTxn

JOURNALED = b"j"
COMPLETED = b"c"
ATTEMPT_FAILED = b"f"

ERROR_BYTES = 4096
"""How much of a failed attempt's error (message and stack) the timeline keeps."""


def entry_journaled(txn: PartitionTxn, invocation_id: str, index: int, at_ms: int) -> None:
    """Records when journal entry ``index`` was written (also its completion, if it is)."""
    txn.put(keys.timeline_key(invocation_id, JOURNALED, index), keys.encode_int(at_ms))


def entry_completed(txn: PartitionTxn, invocation_id: str, index: int, at_ms: int) -> None:
    """Records when a pending journal entry got its outcome."""
    txn.put(keys.timeline_key(invocation_id, COMPLETED, index), keys.encode_int(at_ms))


def attempt_failed(
    txn: PartitionTxn, invocation_id: str, attempt: int, at_ms: int, error: str
) -> None:
    """Records that attempt ``attempt`` (0-based) failed at ``at_ms`` with ``error``."""
    text = error.encode()[:ERROR_BYTES]
    txn.put(
        keys.timeline_key(invocation_id, ATTEMPT_FAILED, attempt), keys.encode_int(at_ms) + text
    )


@dataclass
class Timeline:
    """One invocation's timeline, as read back."""

    journaled_ms: dict[int, int] = field(default_factory=dict)
    completed_ms: dict[int, int] = field(default_factory=dict)
    failed_attempts: list[dict[str, Any]] = field(default_factory=list)


def read(view: PartitionReader, invocation_id: str) -> Timeline:
    """Every timeline event of ``invocation_id``."""
    out = Timeline()
    prefix = keys.timeline_prefix(invocation_id)
    for key, value in view.scan(prefix):
        event = key[len(prefix) : len(prefix) + 1]
        number = int.from_bytes(key[len(prefix) + 1 :], "big")
        at_ms = keys.decode_int(value[:8])
        if event == JOURNALED:
            out.journaled_ms[number] = at_ms
        elif event == COMPLETED:
            out.completed_ms[number] = at_ms
        elif event == ATTEMPT_FAILED:
            error = value[8:].decode(errors="replace")
            out.failed_attempts.append({"attempt": number + 1, "at_ms": at_ms, "error": error})
    return out
