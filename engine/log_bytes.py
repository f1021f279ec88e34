"""The Avro encodings of the hot log records, written and read by hand: those of every call.

Every call writes an ``Invoke`` (the ingress), a ``ProposeEntry`` per step, a ``Complete``, a
``TimerFired`` per sleep, and a ``Response``; fastavro's generic writer cost ~20 µs for each.
:func:`encode_envelope` writes those four commands' envelopes straight from the dataclasses,
with the same bytes as ``fastavro.schemaless_writer`` and :data:`engine.schemas.ENVELOPE`,
and returns None for every other command (engine/codec.py then asks fastavro: they are rare).
:func:`encode_response` does the same for :data:`engine.schemas.RESPONSE`.
:func:`decode_envelope` and :func:`decode_response` read them back (~4x faster than fastavro),
strictly: a record they cannot read whole raises :class:`engine.errors.CodecError`.

The union index of a command is its place in the envelope's ``command`` union, which never
changes (new kinds go at its end). tests/engine/test_log_bytes.py checks every function here
byte for byte against fastavro.
"""

from __future__ import annotations

from perdure.engine import avro_reader as r
from perdure.engine import avro_writer as w
from perdure.engine.errors import CodecError
from perdure.engine.model import HandlerKind
from perdure.engine.records import (
    Command,
    Complete,
    Envelope,
    Invoke,
    ProposeEntry,
    Response,
    ResponseStatus,
    TimerFired,
)

INVOKE_BRANCH = 0
PROPOSE_ENTRY_BRANCH = 3
COMPLETE_BRANCH = 4
TIMER_FIRED_BRANCH = 8
"""Places in the ``command`` union of :data:`engine.schemas.ENVELOPE`."""


def encode_envelope(env: Envelope) -> bytes | None:
    """``env`` in Avro if its command is one of the hot four, else None."""
    c = env.command
    out = bytearray()
    w.long(out, env.epoch)
    w.string(out, env.origin)
    if type(c) is ProposeEntry:
        w.long(out, PROPOSE_ENTRY_BRANCH)
        w.string(out, c.invocation_id)
        w.long(out, c.attempt)
        w.long(out, c.index)
        w.entry(out, c.entry)
    elif type(c) is Invoke:
        w.long(out, INVOKE_BRANCH)
        w.string(out, c.invocation_id)
        w.target(out, c.target)
        w.raw(out, c.input)
        w.optional_reply(out, c.reply)
        w.optional_string(out, c.idempotency_key)
        out.append(1 if c.send else 0)
        w.headers(out, c.headers)
        w.string(out, c.handler_kind.value)
        w.optional_caller(out, c.caller)
        w.long(out, c.delay_ms)
    elif type(c) is Complete:
        w.long(out, COMPLETE_BRANCH)
        w.string(out, c.invocation_id)
        w.long(out, c.attempt)
        w.optional_bytes(out, c.result)
        w.optional_failure(out, c.failure)
        w.state_ops(out, c.state_ops)
    elif type(c) is TimerFired:
        w.long(out, TIMER_FIRED_BRANCH)
        w.string(out, c.invocation_id)
        w.long(out, c.index)
    else:
        return None
    return bytes(out)


def encode_response(r: Response) -> bytes:
    """``r`` in Avro, as :data:`engine.schemas.RESPONSE` lays it out."""
    out = bytearray()
    w.string(out, r.request_id)
    w.string(out, r.invocation_id)
    w.string(out, r.status.value)
    w.optional_bytes(out, r.result)
    w.optional_failure(out, r.failure)
    return bytes(out)


def decode_envelope(data: bytes, timestamp_ms: int) -> Envelope | None:
    """The envelope in ``data`` if its command is one of the hot four, else None.

    Raises:
        CodecError: ``data`` is not a whole envelope.
    """
    reader = r.Reader(data)
    try:
        epoch = reader.long()
        origin = reader.text()
        branch = reader.long()
        command: Command
        if branch == PROPOSE_ENTRY_BRANCH:
            command = ProposeEntry(reader.text(), reader.long(), reader.long(), r.entry(reader))
        elif branch == INVOKE_BRANCH:
            command = Invoke(
                reader.text(),
                r.target(reader),
                reader.raw(),
                r.optional_reply(reader),
                reader.optional_text(),
                reader.boolean(),
                r.headers(reader),
                HandlerKind(reader.text()),
                r.optional_caller(reader),
                reader.long(),
            )
        elif branch == COMPLETE_BRANCH:
            command = Complete(
                reader.text(),
                reader.long(),
                reader.optional_raw(),
                r.optional_failure(reader),
                r.state_ops(reader),
            )
        elif branch == TIMER_FIRED_BRANCH:
            command = TimerFired(reader.text(), reader.long())
        else:
            return None
        reader.end()
    except r.ERRORS as err:
        raise CodecError(f"cannot decode an Envelope: {err!r}") from err
    return Envelope(command, epoch, origin, timestamp_ms)


def decode_response(data: bytes) -> Response:
    """The response in ``data``.

    Raises:
        CodecError: ``data`` is not a whole response.
    """
    reader = r.Reader(data)
    try:
        response = Response(
            reader.text(),
            reader.text(),
            ResponseStatus(reader.text()),
            reader.optional_raw(),
            r.optional_failure(reader),
        )
        reader.end()
    except r.ERRORS as err:
        raise CodecError(f"cannot decode a Response: {err!r}") from err
    return response
