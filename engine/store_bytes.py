"""The Avro encodings of the store's hot records, written by hand: status and journal entry.

A status is rewritten at every step of every invocation, and every step writes its journal
entry; fastavro's generic writer took ~25 µs for a status (a walk of the schema, a dict per
record and per nested record, a check per union), which was a tenth of a worker's CPU on
three_steps. :func:`encode_status` and :func:`encode_entry` write the same bytes as
``fastavro.schemaless_writer`` with :data:`engine.schemas.INVOCATION_STATUS` and
:data:`engine.schemas.JOURNAL_ENTRY` — the byte format does not change — straight from the
dataclasses, in a few µs; :func:`decode_status` and :func:`decode_entry` read them back
(~4x faster than fastavro), strictly: what they cannot read whole raises ``CodecError``.

They follow the schemas' field order; tests/engine/test_store_bytes.py checks them byte for byte
against fastavro over random records, so a change of a schema that this module misses fails
there, never in a store.
"""

from __future__ import annotations

from perdure.engine import avro_reader as r
from perdure.engine import avro_writer as w
from perdure.engine.errors import CodecError
from perdure.engine.model import HandlerKind, InvocationStatus, JournalEntry, Phase


def encode_entry(e: JournalEntry) -> bytes:
    """``e`` in Avro, as :data:`engine.schemas.JOURNAL_ENTRY` lays it out."""
    out = bytearray()
    w.entry(out, e)
    return bytes(out)


def encode_status(s: InvocationStatus) -> bytes:
    """``s`` in Avro, as :data:`engine.schemas.INVOCATION_STATUS` lays it out."""
    out = bytearray()
    w.string(out, s.invocation_id)
    w.target(out, s.target)
    out.append(0)  # input: empty bytes (kept under keys.INPUT)
    w.string(out, s.phase.value)
    w.long(out, s.created_ms)
    w.long(out, s.retry_count)
    w.long(out, s.journal_length)
    w.optional_string(out, s.idempotency_key)
    out.append(0)  # waiters: an empty array (kept under keys.WAITER)
    w.optional_bytes(out, s.result)
    w.optional_failure(out, s.failure)
    w.optional_long(out, s.completed_ms)
    w.optional_string(out, s.last_error)
    w.headers(out, s.headers)
    w.string(out, s.handler_kind.value)
    w.optional_caller(out, s.caller)
    w.optional_long(out, s.execute_at_ms)
    w.ints(out, s.suspended_on)
    out.append(1 if s.cancel_requested else 0)
    return bytes(out)


def decode_entry(data: bytes) -> JournalEntry:
    """The journal entry in ``data``.

    Raises:
        CodecError: ``data`` is not a whole entry.
    """
    reader = r.Reader(data)
    try:
        e = r.entry(reader)
        reader.end()
    except r.ERRORS as err:
        raise CodecError(f"cannot decode a JournalEntry: {err!r}") from err
    return e


def decode_status(data: bytes) -> InvocationStatus:
    """The status in ``data`` (``input`` and inline ``waiters`` of store format 1 are read
    over: they live under keys of their own since format 2).

    Raises:
        CodecError: ``data`` is not a whole status.
    """
    reader = r.Reader(data)
    try:
        invocation_id = reader.text()
        target = r.target(reader)
        reader.raw()  # input
        phase = Phase(reader.text())
        created_ms = reader.long()
        retry_count = reader.long()
        journal_length = reader.long()
        idempotency_key = reader.optional_text()
        while n := reader.count():  # waiters
            for _ in range(n):
                r.reply(reader)
        s = InvocationStatus(
            invocation_id,
            target,
            phase,
            created_ms,
            retry_count,
            journal_length,
            idempotency_key,
            result=reader.optional_raw(),
            failure=r.optional_failure(reader),
            completed_ms=reader.optional_long(),
            last_error=reader.optional_text(),
            headers=r.headers(reader),
            handler_kind=HandlerKind(reader.text()),
            caller=r.optional_caller(reader),
            execute_at_ms=reader.optional_long(),
            suspended_on=r.ints(reader),
            cancel_requested=reader.boolean(),
        )
        reader.end()
    except r.ERRORS as err:
        raise CodecError(f"cannot decode an InvocationStatus: {err!r}") from err
    return s
