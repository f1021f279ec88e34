"""The key layout of a partition's store: one byte of table prefix, then the table's key.

A table prefix, once assigned, never changes meaning; retired prefixes stay reserved. Keys sort
so that prefix scans return a table (or one invocation's journal) in order.
"""

from __future__ import annotations

from perdure.engine.limits import MAX_COMPONENT_BYTES, LimitExceeded

STORE_FORMAT_VERSION = 2
"""Written under ``META_FORMAT``; a store with another version is rebuilt from the log.

Version 2 keeps an invocation's input and its waiters out of its status record, so that a
journal step rewrites a few dozen bytes instead of the whole input.
"""

META = b"\x00"
STATUS = b"\x01"
JOURNAL = b"\x02"
EXPIRY = b"\x03"
RUNNING = b"\x04"
STATE = b"\x05"
LOCK = b"\x06"
INBOX = b"\x07"
OUTBOX = b"\x08"
PROMISE = b"\x09"
PROMISE_WAITER = b"\x0a"
TIMER = b"\x0b"
INBOX_ENDS = b"\x0c"
INPUT = b"\x0d"
WAITER = b"\x0e"
RECEIPT = b"\x0f"
TIMELINE = b"\x10"
"""When each journal entry was recorded and completed, and each failed attempt (operators' view)."""
SIGNAL = b"\x11"
"""A Restate SDK's awakeable resolved before the handler waited for it (engine/awakeables.py)."""
EARLY_AWAKEABLE = b"\x12"
"""One of Perdure's awakeables resolved before its entry reached the journal
(engine/awakeables.py)."""
NOTIFIED = b"\x14"
"""The order in which an invocation's pending entries completed (engine/notifications.py)."""
REJECTED = b"\x13"
"""A record whose apply raised, by offset: what it was and why (engine/rejection.py)."""

SCHEDULED_START = 0xFFFFFFFF
"""The entry index of a delayed invocation's start timer."""

META_APPLIED_OFFSET = META + b"applied-offset"
META_FORMAT = META + b"format"
META_LEADER = META + b"leader"
META_BACKUP = META + b"backup"
"""The newest backup recorded in the log (engine/backups.py)."""


def _component(text: str) -> bytes:
    data = text.encode()
    if len(data) > MAX_COMPONENT_BYTES:
        # The edges check this (engine/limits.py); a record that got past them is rejected.
        raise LimitExceeded(f"a name of {len(data)} bytes does not fit a store key")
    return len(data).to_bytes(2, "big") + data


def _time(ms: int) -> bytes:
    if ms >= 2**64:
        raise LimitExceeded(f"time {ms} ms does not fit a store key")
    return max(ms, 0).to_bytes(8, "big")


def status_key(invocation_id: str) -> bytes:
    """The invocation's status."""
    return STATUS + _component(invocation_id)


def journal_prefix(invocation_id: str) -> bytes:
    """All journal entries of one invocation, in index order."""
    return JOURNAL + _component(invocation_id)


def journal_key(invocation_id: str, index: int) -> bytes:
    """One journal entry."""
    return journal_prefix(invocation_id) + index.to_bytes(4, "big")


def running_key(invocation_id: str) -> bytes:
    """Index of invocations a new leader must (re)start."""
    return RUNNING + _component(invocation_id)


def expiry_key(completed_ms: int, invocation_id: str) -> bytes:
    """Index of completed invocations by completion time, for the retention sweep.

    Its value is how the invocation ended, as an operator names it (``completed``, ``failed``,
    ``cancelled``, ``killed``: engine.queries.STATUSES), so that a list of one outcome skips
    the others without reading their statuses; empty in entries written before that (a list
    reads the status then).
    """
    return EXPIRY + _time(completed_ms) + _component(invocation_id)


def id_of_expiry_key(key: bytes) -> tuple[int, str]:
    """The completion time and invocation id named by an expiry key."""
    completed_ms = int.from_bytes(key[1:9], "big")
    length = int.from_bytes(key[9:11], "big")
    return completed_ms, key[11 : 11 + length].decode()


def id_of_running_key(key: bytes) -> str:
    """The invocation id named by a running-index key."""
    length = int.from_bytes(key[1:3], "big")
    return key[3 : 3 + length].decode()


def encode_int(value: int) -> bytes:
    """A signed 64-bit integer value."""
    return value.to_bytes(8, "big", signed=True)


def decode_int(data: bytes) -> int:
    """Reads :func:`encode_int`."""
    return int.from_bytes(data, "big", signed=True)


def state_prefix(service: str, key: str) -> bytes:
    """All state of one object or workflow, in name order."""
    return STATE + _component(service) + _component(key)


def state_key(service: str, key: str, name: str) -> bytes:
    """One state entry."""
    return state_prefix(service, key) + _component(name)


def name_of_state_key(full: bytes, prefix: bytes) -> str:
    """The state name in a key of :func:`state_prefix` ``prefix``."""
    rest = full[len(prefix) :]
    return rest[2 : 2 + int.from_bytes(rest[:2], "big")].decode()


def lock_key(service: str, key: str) -> bytes:
    """The exclusive invocation that holds an object key."""
    return LOCK + _component(service) + _component(key)


def inbox_prefix(service: str, key: str) -> bytes:
    """Invocations waiting for an object key, in arrival order."""
    return INBOX + _component(service) + _component(key)


def inbox_ends_key(service: str, key: str) -> bytes:
    """The head and tail sequence numbers of a key's inbox (a queue without scans)."""
    return INBOX_ENDS + _component(service) + _component(key)


def inbox_key(service: str, key: str, seq: int) -> bytes:
    """One waiting invocation."""
    return inbox_prefix(service, key) + seq.to_bytes(8, "big")


def outbox_key(invocation_id: str, index: int) -> bytes:
    """A call or send of journal entry ``index`` not yet confirmed by its callee."""
    return outbox_prefix(invocation_id) + index.to_bytes(4, "big")


def promise_key(service: str, key: str, name: str) -> bytes:
    """A workflow's durable promise."""
    return PROMISE + _component(service) + _component(key) + _component(name)


def promise_prefix(service: str, key: str) -> bytes:
    """All promises of one workflow."""
    return PROMISE + _component(service) + _component(key)


def promise_waiter_prefix(service: str, key: str, name: str) -> bytes:
    """Journal entries waiting for a promise."""
    return PROMISE_WAITER + _component(service) + _component(key) + _component(name)


def promise_waiter_key(service: str, key: str, name: str, invocation_id: str, index: int) -> bytes:
    """One journal entry waiting for a promise."""
    return (
        promise_waiter_prefix(service, key, name)
        + _component(invocation_id)
        + index.to_bytes(4, "big")
    )


def waiter_of_key(full: bytes, prefix: bytes) -> tuple[str, int]:
    """The invocation id and entry index in a promise-waiter key."""
    rest = full[len(prefix) :]
    length = int.from_bytes(rest[:2], "big")
    return rest[2 : 2 + length].decode(), int.from_bytes(rest[2 + length : 6 + length], "big")


def timer_key(wake_at_ms: int, invocation_id: str, index: int) -> bytes:
    """A timer, in wake-up order."""
    return (
        TIMER
        + _time(wake_at_ms)
        + _component(invocation_id)
        + (index & 0xFFFFFFFF).to_bytes(4, "big")
    )


def timer_of_key(key: bytes) -> tuple[int, str, int]:
    """The wake-up time, invocation id and entry index of a timer key."""
    wake_at = int.from_bytes(key[1:9], "big")
    length = int.from_bytes(key[9:11], "big")
    invocation_id = key[11 : 11 + length].decode()
    index = int.from_bytes(key[11 + length : 15 + length], "big")
    return wake_at, invocation_id, index


def input_key(invocation_id: str) -> bytes:
    """The invocation's input, apart from its status (written once, read at each start)."""
    return INPUT + _component(invocation_id)


def waiter_prefix(invocation_id: str) -> bytes:
    """Requests waiting for the invocation's outcome."""
    return WAITER + _component(invocation_id)


def waiter_key(invocation_id: str, request_id: str) -> bytes:
    """One waiting request; the value is its responses-topic partition."""
    return waiter_prefix(invocation_id) + _component(request_id)


def request_of_waiter_key(full: bytes, prefix: bytes) -> str:
    """The request id in a key of :func:`waiter_prefix` ``prefix``."""
    rest = full[len(prefix) :]
    return rest[2 : 2 + int.from_bytes(rest[:2], "big")].decode()


def receipt_prefix(invocation_id: str) -> bytes:
    """Commands from other invocations' journals already applied to this invocation."""
    return RECEIPT + _component(invocation_id)


def receipt_key(invocation_id: str, caller_id: str, caller_index: int) -> bytes:
    """The outcome given to journal entry ``caller_index`` of ``caller_id`` (deduplication)."""
    return receipt_prefix(invocation_id) + _component(caller_id) + caller_index.to_bytes(4, "big")


def outbox_prefix(invocation_id: str) -> bytes:
    """Every undelivered call, send or command of one invocation."""
    return OUTBOX + _component(invocation_id)


def timeline_prefix(invocation_id: str) -> bytes:
    """Every timeline event of one invocation, in (kind, number) order."""
    return TIMELINE + _component(invocation_id)


def timeline_key(invocation_id: str, event: bytes, number: int) -> bytes:
    """One timeline event: ``event`` is a one-byte kind (engine/timeline.py)."""
    return timeline_prefix(invocation_id) + event + (number & 0xFFFFFFFF).to_bytes(4, "big")


def signal_prefix(invocation_id: str) -> bytes:
    """Every signal (a Restate SDK's awakeable) resolved before its invocation journaled it."""
    return SIGNAL + _component(invocation_id)


def signal_key(invocation_id: str, signal: int) -> bytes:
    """One early signal; the value is the completed journal entry it becomes."""
    return signal_prefix(invocation_id) + signal.to_bytes(4, "big")


def early_awakeable_prefix(invocation_id: str) -> bytes:
    """Every resolution of one of Perdure's awakeables that came before its entry was journaled."""
    return EARLY_AWAKEABLE + _component(invocation_id)


def early_awakeable_key(invocation_id: str, index: int) -> bytes:
    """One early resolution of the awakeable at journal ``index``; the value is its entry."""
    return early_awakeable_prefix(invocation_id) + index.to_bytes(4, "big")


def rejected_key(offset: int, timestamp_ms: int) -> bytes:
    """The mark of a record rejected at ``offset`` (a log without offsets passes -1: the
    record's time orders its marks instead)."""
    position = offset if offset >= 0 else -1 - max(timestamp_ms, 0)
    return REJECTED + position.to_bytes(8, "big", signed=True)


def offset_of_rejected_key(key: bytes) -> int:
    """The offset in a :func:`rejected_key` (negative: a log without offsets)."""
    return int.from_bytes(key[1:9], "big", signed=True)


def notified_prefix(invocation_id: str) -> bytes:
    """Every completion of one invocation, in the order they came; the key itself holds the
    count so far (it sorts before them)."""
    return NOTIFIED + _component(invocation_id)


def notified_key(invocation_id: str, seq: int) -> bytes:
    """The ``seq``-th completion of a pending entry of ``invocation_id``."""
    return notified_prefix(invocation_id) + seq.to_bytes(4, "big")
