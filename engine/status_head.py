"""A partial read of a stored invocation status: the fields a list filters on, without the rest.

A list query over a partition decodes every status its index holds that might match; decoding
one in full (fastavro, dicts, the model's dataclasses) costs ~25 µs, and a filter on a rare
handler or key among 100,000 retained invocations reads all of them. :func:`read_head` walks
the Avro encoding of :data:`engine.schemas.INVOCATION_STATUS` by hand up to ``failure`` and
stops: a few µs. The query decodes in full only what its head lets through.

The walk follows the schema's field order (``invocation_id``, ``target``, ``input``, ``phase``,
``created_ms``, ``retry_count``, ``journal_length``, ``idempotency_key``, ``waiters``,
``result``, ``failure``); tests/engine/test_status_head.py checks it against fastavro, so a
change of the schema that this module misses fails there, not in an operator's list.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.model import Failure, Phase, Target


@dataclass(frozen=True, slots=True)
class StatusHead:
    """The first fields of a stored status."""

    target: Target
    phase: Phase
    created_ms: int
    failure: Failure | None


class _Reader:
    """Avro's binary primitives over one buffer (zig-zag varints, length-prefixed bytes)."""

    __slots__ = ("at", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def long(self) -> int:
        shift = 0
        value = 0
        data = self.data
        while True:
            b = data[self.at]
            self.at += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return (value >> 1) ^ -(value & 1)
            shift += 7

    def raw(self) -> bytes:
        n = self.long()
        start = self.at
        self.at += n
        if n < 0 or self.at > len(self.data):
            raise IndexError("a length past the end")
        return self.data[start : self.at]

    def text(self) -> str:
        return self.raw().decode()

    def optional_text(self) -> str | None:
        return None if self.long() == 0 else self.text()


def encoded_text(text: str) -> bytes:
    """How Avro writes the string ``text``: a status whose target has ``text`` as its service,
    handler or key holds these bytes, so a status without them cannot match (read first: a
    substring test costs far less than :func:`read_head`)."""
    raw = text.encode()
    n = len(raw) << 1  # zig-zag of a length, never negative
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + raw


def read_head(data: bytes) -> StatusHead | None:
    """The head of an encoded status, or None where it cannot be read this way (the caller
    decodes it in full then: a status of store format 1 with waiters inline, or garbage)."""
    r = _Reader(data)
    try:
        r.raw()  # invocation_id
        target = Target(r.text(), r.text(), r.optional_text())
        r.raw()  # input (empty since store format 2)
        phase = Phase(r.text())
        created_ms = r.long()
        r.long()  # retry_count
        r.long()  # journal_length
        if r.long() != 0:
            r.raw()  # idempotency_key
        if r.long() != 0:
            return None  # waiters inline (store format 1): not walked here
        if r.long() != 0:
            r.raw()  # result
        failure = Failure(r.long(), r.text()) if r.long() != 0 else None
    except (IndexError, ValueError, UnicodeDecodeError):
        return None
    return StatusHead(target, phase, created_ms, failure)
