"""Avro encoding of log records, responses and stored values (schemas in :mod:`engine.schemas`)."""

from __future__ import annotations

import io
from typing import Any

import fastavro

from perdure.engine import log_bytes, schemas, store_bytes
from perdure.engine.avro_records import AvroRecord
from perdure.engine.errors import CodecError
from perdure.engine.model import (
    InvocationStatus,
    JournalEntry,
)
from perdure.engine.records import (
    Command,
    Envelope,
    Response,
)
from perdure.engine.status_cache import StatusCache

_named: dict[str, Any] = {}
for _schema in schemas.NAMED_TYPES:
    fastavro.parse_schema(_schema, named_schemas=_named)
_ENVELOPE = fastavro.parse_schema(schemas.ENVELOPE, named_schemas=dict(_named))
_RESPONSE = fastavro.parse_schema(schemas.RESPONSE, named_schemas=dict(_named))
_STATUS = fastavro.parse_schema(schemas.INVOCATION_STATUS, named_schemas=dict(_named))
_ENTRY = fastavro.parse_schema(schemas.JOURNAL_ENTRY, named_schemas=dict(_named))


def _write(schema: Any, datum: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, datum)
    return buf.getvalue()


def _read(schema: Any, data: bytes) -> Any:
    try:
        return fastavro.schemaless_reader(io.BytesIO(data), schema, None, return_record_name=True)
    except Exception as err:  # fastavro raises many kinds on garbage input
        raise CodecError(f"cannot decode a {schema['name']}: {err}") from err


# --- log records -------------------------------------------------------------------------------

_BY_TYPE: dict[type, AvroRecord] = {c: AvroRecord.of(c) for c in schemas.COMMANDS}
_BY_NAME: dict[str, AvroRecord] = {c.__name__: r for c, r in _BY_TYPE.items()}
_RESPONSE_RECORD = AvroRecord.of(Response)
_STATUS_RECORD = schemas.INVOCATION_STATUS_RECORD  # with its retired fields
_ENTRY_RECORD = AvroRecord.of(JournalEntry)


def _command_out(c: Command) -> tuple[str, dict[str, Any]]:
    record = _BY_TYPE.get(type(c))
    if record is None:
        raise CodecError(f"not a command: {c!r}")
    return record.full_name, record.to_avro(c)


def _command_in(name: str, d: dict[str, Any]) -> Command:
    record = _BY_NAME.get(name.rsplit(".", 1)[-1])
    if record is None:
        raise CodecError(f"unknown command record {name}")
    command: Command = record.from_avro(d)
    return command


def encode_envelope(env: Envelope) -> bytes:
    """Encodes a log record's value (the timestamp travels as the Kafka record timestamp).

    The records of every call are written by hand (engine/log_bytes.py, the same bytes as
    :func:`encode_envelope_generic`); the others by fastavro.
    """
    data = log_bytes.encode_envelope(env)
    return encode_envelope_generic(env) if data is None else data


def encode_envelope_generic(env: Envelope) -> bytes:
    """The envelope through fastavro's generic writer (the reference of engine/log_bytes.py)."""
    return _write(
        _ENVELOPE, {"epoch": env.epoch, "origin": env.origin, "command": _command_out(env.command)}
    )


def decode_envelope(data: bytes, timestamp_ms: int) -> Envelope:
    """Decodes a log record's value; ``timestamp_ms`` is the Kafka record timestamp.

    The records of every call are read by hand (engine/log_bytes.py), the others by fastavro.
    """
    env = log_bytes.decode_envelope(data, timestamp_ms)
    return decode_envelope_generic(data, timestamp_ms) if env is None else env


def decode_envelope_generic(data: bytes, timestamp_ms: int) -> Envelope:
    """The envelope through fastavro's generic reader (the reference of engine/log_bytes.py)."""
    d = _read(_ENVELOPE, data)
    name, body = d["command"]
    try:
        command = _command_in(name, body)
    except (ValueError, KeyError, TypeError) as err:  # e.g. an entry kind this code lacks
        raise CodecError(f"cannot read a {name} record: {err!r}") from err
    return Envelope(command, d["epoch"], d["origin"], timestamp_ms)


# --- responses ---------------------------------------------------------------------------------


def encode_response(r: Response) -> bytes:
    """Encodes a record of the responses topic (by hand: engine/log_bytes.py, the same bytes
    as :func:`encode_response_generic`)."""
    return log_bytes.encode_response(r)


def encode_response_generic(r: Response) -> bytes:
    """The response through fastavro's generic writer (the reference of engine/log_bytes.py)."""
    return _write(_RESPONSE, _RESPONSE_RECORD.to_avro(r))


def decode_response(data: bytes) -> Response:
    """Decodes a record of the responses topic (by hand: engine/log_bytes.py)."""
    return log_bytes.decode_response(data)


def decode_response_generic(data: bytes) -> Response:
    """The response through fastavro's generic reader (the reference of engine/log_bytes.py)."""
    response: Response = _RESPONSE_RECORD.from_avro(_read(_RESPONSE, data))
    return response


# --- stored values -----------------------------------------------------------------------------


def encode_status(s: InvocationStatus, cache: StatusCache | None = None) -> bytes:
    """Encodes an invocation's status for the partition store (by hand: engine/store_bytes.py,
    the same bytes as :func:`encode_status_generic`), kept in ``cache`` for its next read."""
    data = store_bytes.encode_status(s)
    if cache is not None:
        cache.put(data, s)
    return data


def encode_status_generic(s: InvocationStatus) -> bytes:
    """The status through fastavro's generic writer: the reference the hand-written encoding
    is tested against."""
    return _write(_STATUS, _STATUS_RECORD.to_avro(s))


def decode_status(data: bytes, cache: StatusCache | None = None) -> InvocationStatus:
    """Decodes an invocation's status from the partition store (from ``cache`` if kept)."""
    if cache is not None:
        cached = cache.get(data)
        if cached is not None:
            return cached
    return store_bytes.decode_status(data)


def decode_status_generic(data: bytes) -> InvocationStatus:
    """The status through fastavro's generic reader (the reference of engine/store_bytes.py)."""
    status: InvocationStatus = _STATUS_RECORD.from_avro(_read(_STATUS, data))
    return status


def encode_entry(e: JournalEntry) -> bytes:
    """Encodes a journal entry for the partition store (by hand: engine/store_bytes.py, the
    same bytes as :func:`encode_entry_generic`)."""
    return store_bytes.encode_entry(e)


def encode_entry_generic(e: JournalEntry) -> bytes:
    """The entry through fastavro's generic writer: the reference the hand-written encoding
    is tested against."""
    return _write(_ENTRY, _ENTRY_RECORD.to_avro(e))


def entry_is_completed(data: bytes) -> bool:
    """Whether an encoded journal entry is completed, without decoding it.

    ``completed`` is the last field of the entry schema and Avro writes a boolean as one byte
    at the end, so the last byte says it; scans for pending entries decode only those.
    """
    return data[-1:] == b"\x01"


def decode_entry(data: bytes) -> JournalEntry:
    """Decodes a journal entry from the partition store (by hand: engine/store_bytes.py)."""
    return store_bytes.decode_entry(data)


def decode_entry_generic(data: bytes) -> JournalEntry:
    """The entry through fastavro's generic reader (the reference of engine/store_bytes.py)."""
    entry: JournalEntry = _ENTRY_RECORD.from_avro(_read(_ENTRY, data))
    return entry
