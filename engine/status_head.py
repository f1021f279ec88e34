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

from perdure.engine.avro_reader import ERRORS, Reader
from perdure.engine.model import Failure, Phase, Target


@dataclass(frozen=True, slots=True)
class StatusHead:
    """The first fields of a stored status."""

    target: Target
    phase: Phase
    created_ms: int
    failure: Failure | None


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
    r = Reader(data)
    try:
        r.raw()  # invocation_id
        target = Target(r.text(), r.text(), r.optional_text())
        r.raw()  # input (empty since store format 2)
        phase = Phase(r.text())
        created_ms = r.long()
        r.long()  # retry_count
        r.long()  # journal_length
        r.optional_raw()  # idempotency_key
        if r.long() != 0:
            return None  # waiters inline (store format 1): not walked here
        r.optional_raw()  # result
        failure = Failure(r.long(), r.text()) if r.present() else None
    except ERRORS:
        return None
    return StatusHead(target, phase, created_ms, failure)
