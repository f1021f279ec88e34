"""Avro's binary encoding written by hand: primitives and the small records others nest.

For the hot records only (engine/store_bytes.py, engine/log_bytes.py): fastavro's generic
writer walks the schema and builds a dict per record for every write, which cost more than
the rest of a step. Each function appends to a ``bytearray``; each follows its schema in
engine/schemas.py, and the tests check the records built from them byte for byte against
fastavro.
"""

from __future__ import annotations

from perdure.engine.errors import CodecError
from perdure.engine.model import Caller, CallSpec, Failure, JournalEntry, Reply, StateOp, Target

_U64 = 1 << 64


def long(out: bytearray, n: int) -> None:
    """A zig-zag varint (Avro's ``int`` and ``long`` alike, for values in their range).

    Raises:
        CodecError: for a value outside a signed 64-bit long, which zig-zag would write as
            the bytes of another number.
    """
    n = (n << 1) ^ (n >> 63)
    if not 0 <= n < _U64:
        raise CodecError("an integer outside the range of a 64-bit Avro long")
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def raw(out: bytearray, data: bytes) -> None:
    """Avro ``bytes``: the length, then the bytes."""
    long(out, len(data))
    out += data


def string(out: bytearray, text: str) -> None:
    """Avro ``string``: UTF-8, length first."""
    raw(out, text.encode())


def optional_string(out: bytearray, text: str | None) -> None:
    """A ``["null", "string"]`` union."""
    if text is None:
        out.append(0)  # union branch 0: null
    else:
        out.append(2)  # union branch 1, zig-zag encoded
        string(out, text)


def optional_long(out: bytearray, n: int | None) -> None:
    """A ``["null", "long"]`` (or ``int``) union."""
    if n is None:
        out.append(0)
    else:
        out.append(2)
        long(out, n)


def optional_bytes(out: bytearray, data: bytes | None) -> None:
    """A ``["null", "bytes"]`` union."""
    if data is None:
        out.append(0)
    else:
        out.append(2)
        raw(out, data)


def target(out: bytearray, t: Target) -> None:
    """A ``Target`` record."""
    string(out, t.service)
    string(out, t.handler)
    optional_string(out, t.key)


def optional_failure(out: bytearray, failure: Failure | None) -> None:
    """A ``["null", "Failure"]`` union."""
    if failure is None:
        out.append(0)
    else:
        out.append(2)
        long(out, failure.code)
        string(out, failure.message)


def optional_call(out: bytearray, call: CallSpec | None) -> None:
    """A ``["null", "CallSpec"]`` union."""
    if call is None:
        out.append(0)
    else:
        out.append(2)
        target(out, call.target)
        string(out, call.handler_kind.value)
        raw(out, call.input)
        string(out, call.callee_id)
        long(out, call.delay_ms)


def optional_caller(out: bytearray, caller: Caller | None) -> None:
    """A ``["null", "Caller"]`` union."""
    if caller is None:
        out.append(0)
    else:
        out.append(2)
        string(out, caller.invocation_id)
        long(out, caller.index)


def optional_reply(out: bytearray, reply: Reply | None) -> None:
    """A ``["null", "Reply"]`` union."""
    if reply is None:
        out.append(0)
    else:
        out.append(2)
        long(out, reply.partition)
        string(out, reply.request_id)


def headers(out: bytearray, pairs: tuple[tuple[str, str], ...]) -> None:
    """A map of strings (a repeated name keeps its last value, as in a dict)."""
    as_map = dict(pairs)
    if as_map:
        long(out, len(as_map))
        for name, value in as_map.items():
            string(out, name)
            string(out, value)
    out.append(0)  # the end of the map's blocks


def ints(out: bytearray, values: tuple[int, ...]) -> None:
    """An array of ``int`` (one block, then the end)."""
    if values:
        long(out, len(values))
        for value in values:
            long(out, value)
    out.append(0)


def state_ops(out: bytearray, ops: tuple[StateOp, ...]) -> None:
    """An array of ``StateOp`` records."""
    if ops:
        long(out, len(ops))
        for op in ops:
            string(out, op.kind.value)
            string(out, op.name)
            optional_bytes(out, op.value)
    out.append(0)


def entry(out: bytearray, e: JournalEntry) -> None:
    """A ``JournalEntry`` record."""
    string(out, e.kind.value)
    string(out, e.name)
    optional_bytes(out, e.value)
    optional_failure(out, e.failure)
    state_ops(out, e.state_ops)
    optional_call(out, e.call)
    out.append(1 if e.completed else 0)
