"""Avro encoding of log records, responses and stored values (schemas in :mod:`engine.schemas`)."""

from __future__ import annotations

import io
from typing import Any

import fastavro

from perdure.engine import log_bytes, schemas, store_bytes
from perdure.engine.errors import CodecError
from perdure.engine.model import (
    Caller,
    CallSpec,
    EntryKind,
    Failure,
    HandlerKind,
    InvocationStatus,
    JournalEntry,
    Phase,
    Reply,
    StateOp,
    StateOpKind,
    Target,
)
from perdure.engine.records import (
    AnnounceLeader,
    Attach,
    AttemptFailed,
    BackupTaken,
    CallResult,
    Cancel,
    Command,
    Complete,
    CompleteAwakeable,
    Detach,
    Envelope,
    Invoke,
    ProposeEntry,
    Purge,
    PurgeExpired,
    Query,
    Response,
    ResponseStatus,
    RetryNow,
    SetState,
    Suspend,
    TimerFired,
)
from perdure.engine.status_cache import StatusCache

_named: dict[str, Any] = {}
for _schema in schemas.NAMED_TYPES:
    fastavro.parse_schema(_schema, named_schemas=_named)
_ENVELOPE = fastavro.parse_schema(schemas.ENVELOPE, named_schemas=dict(_named))
_RESPONSE = fastavro.parse_schema(schemas.RESPONSE, named_schemas=dict(_named))
_STATUS = fastavro.parse_schema(schemas.INVOCATION_STATUS, named_schemas=dict(_named))
_ENTRY = fastavro.parse_schema(schemas.JOURNAL_ENTRY, named_schemas=dict(_named))

_NS = "dev.perdure.v1."


def _write(schema: Any, datum: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, datum)
    return buf.getvalue()


def _read(schema: Any, data: bytes) -> Any:
    try:
        return fastavro.schemaless_reader(io.BytesIO(data), schema, None, return_record_name=True)
    except Exception as err:  # fastavro raises many kinds on garbage input
        raise CodecError(f"cannot decode a {schema['name']}: {err}") from err


# --- small types -------------------------------------------------------------------------------


def _failure_out(f: Failure | None) -> dict[str, Any] | None:
    return None if f is None else {"code": f.code, "message": f.message}


def _failure_in(d: Any) -> Failure | None:
    if d is None:
        return None
    if isinstance(d, tuple):  # a union member read with its record name
        d = d[1]
    return Failure(d["code"], d["message"])


def _target_out(t: Target) -> dict[str, Any]:
    return {"service": t.service, "handler": t.handler, "key": t.key}


def _target_in(d: dict[str, Any]) -> Target:
    return Target(d["service"], d["handler"], d["key"])


def _reply_out(r: Reply | None) -> dict[str, Any] | None:
    return None if r is None else {"partition": r.partition, "request_id": r.request_id}


def _reply_in(d: Any) -> Reply | None:
    if d is None:
        return None
    if isinstance(d, tuple):
        d = d[1]
    return Reply(d["partition"], d["request_id"])


def _ops_out(ops: tuple[StateOp, ...]) -> list[dict[str, Any]]:
    return [{"kind": o.kind.value, "name": o.name, "value": o.value} for o in ops]


def _ops_in(d: list[dict[str, Any]]) -> tuple[StateOp, ...]:
    return tuple(StateOp(StateOpKind(o["kind"]), o["name"], o["value"]) for o in d)


def _caller_out(c: Caller | None) -> dict[str, Any] | None:
    return None if c is None else {"invocation_id": c.invocation_id, "index": c.index}


def _caller_in(d: Any) -> Caller | None:
    if d is None:
        return None
    if isinstance(d, tuple):
        d = d[1]
    return Caller(d["invocation_id"], d["index"])


def _call_out(c: CallSpec | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "target": _target_out(c.target),
        "handler_kind": c.handler_kind.value,
        "input": c.input,
        "callee_id": c.callee_id,
        "delay_ms": c.delay_ms,
    }


def _call_in(d: Any) -> CallSpec | None:
    if d is None:
        return None
    if isinstance(d, tuple):
        d = d[1]
    return CallSpec(
        _target_in(d["target"]),
        HandlerKind(d["handler_kind"]),
        d["input"],
        d["callee_id"],
        d["delay_ms"],
    )


def _entry_out(e: JournalEntry) -> dict[str, Any]:
    return {
        "kind": e.kind.value,
        "name": e.name,
        "value": e.value,
        "failure": _failure_out(e.failure),
        "state_ops": _ops_out(e.state_ops),
        "call": _call_out(e.call),
        "completed": e.completed,
    }


def _entry_in(d: dict[str, Any]) -> JournalEntry:
    return JournalEntry(
        EntryKind(d["kind"]),
        d["name"],
        d["value"],
        _failure_in(d["failure"]),
        _ops_in(d["state_ops"]),
        _call_in(d["call"]),
        d["completed"],
    )


def _headers_in(d: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(d.items()))


# --- log records -------------------------------------------------------------------------------


def _command_out(c: Command) -> tuple[str, dict[str, Any]]:
    match c:
        case Invoke():
            return _NS + "Invoke", {
                "invocation_id": c.invocation_id,
                "target": _target_out(c.target),
                "input": c.input,
                "reply": _reply_out(c.reply),
                "idempotency_key": c.idempotency_key,
                "send": c.send,
                "headers": dict(c.headers),
                "handler_kind": c.handler_kind.value,
                "caller": _caller_out(c.caller),
                "delay_ms": c.delay_ms,
            }
        case Attach():
            return _NS + "Attach", {
                "invocation_id": c.invocation_id,
                "reply": _reply_out(c.reply),
                "block": c.block,
            }
        case AnnounceLeader():
            return _NS + "AnnounceLeader", {"leader_id": c.leader_id}
        case ProposeEntry():
            return _NS + "ProposeEntry", {
                "invocation_id": c.invocation_id,
                "attempt": c.attempt,
                "index": c.index,
                "entry": _entry_out(c.entry),
            }
        case Complete():
            return _NS + "Complete", {
                "invocation_id": c.invocation_id,
                "attempt": c.attempt,
                "result": c.result,
                "failure": _failure_out(c.failure),
                "state_ops": _ops_out(c.state_ops),
            }
        case CallResult():
            return _NS + "CallResult", {
                "invocation_id": c.invocation_id,
                "index": c.index,
                "result": c.result,
                "failure": _failure_out(c.failure),
            }
        case CompleteAwakeable():
            return _NS + "CompleteAwakeable", {
                "invocation_id": c.invocation_id,
                "index": c.index,
                "value": c.value,
                "failure": _failure_out(c.failure),
                "reply": _reply_out(c.reply),
                "caller": _caller_out(c.caller),
            }
        case Cancel():
            return _NS + "Cancel", {
                "invocation_id": c.invocation_id,
                "kill": c.kill,
                "reply": _reply_out(c.reply),
                "caller": _caller_out(c.caller),
            }
        case TimerFired():
            return _NS + "TimerFired", {"invocation_id": c.invocation_id, "index": c.index}
        case Suspend():
            return _NS + "Suspend", {
                "invocation_id": c.invocation_id,
                "attempt": c.attempt,
                "waiting_on": list(c.waiting_on),
            }
        case AttemptFailed():
            return _NS + "AttemptFailed", {
                "invocation_id": c.invocation_id,
                "attempt": c.attempt,
                "message": c.message,
                "retry_in_ms": c.retry_in_ms,
            }
        case PurgeExpired():
            return _NS + "PurgeExpired", {"retention_ms": c.retention_ms}
        case Detach():
            return _NS + "Detach", {"invocation_id": c.invocation_id, "request_id": c.request_id}
        case BackupTaken():
            return _NS + "BackupTaken", {
                "backup_id": c.backup_id,
                "applied_offset": c.applied_offset,
                "first_offset": c.first_offset,
                "keys": c.keys,
                "size_bytes": c.size_bytes,
            }
        case Query():
            return _NS + "Query", {"reply": _reply_out(c.reply), "request": c.request}
        case SetState():
            return _NS + "SetState", {
                "service": c.service,
                "key": c.key,
                "version": c.version,
                "new_state": dict(c.new_state),
                "reply": _reply_out(c.reply),
            }
        case Purge():
            return _NS + "Purge", {"invocation_id": c.invocation_id, "reply": _reply_out(c.reply)}
        case RetryNow():
            return _NS + "RetryNow", {
                "invocation_id": c.invocation_id,
                "reply": _reply_out(c.reply),
            }
    raise CodecError(f"not a command: {c!r}")


def _command_in(name: str, d: dict[str, Any]) -> Command:
    short = name.rsplit(".", 1)[-1]
    if short == "Invoke":
        reply = _reply_in(d["reply"])
        return Invoke(
            d["invocation_id"],
            _target_in(d["target"]),
            d["input"],
            reply,
            d["idempotency_key"],
            d["send"],
            _headers_in(d["headers"]),
            HandlerKind(d["handler_kind"]),
            _caller_in(d["caller"]),
            d["delay_ms"],
        )
    if short == "Attach":
        attach_reply = _reply_in(d["reply"])
        assert attach_reply is not None
        return Attach(d["invocation_id"], attach_reply, d["block"])
    if short == "AnnounceLeader":
        return AnnounceLeader(d["leader_id"])
    if short == "ProposeEntry":
        return ProposeEntry(d["invocation_id"], d["attempt"], d["index"], _entry_in(d["entry"]))
    if short == "Complete":
        return Complete(
            d["invocation_id"],
            d["attempt"],
            d["result"],
            _failure_in(d["failure"]),
            _ops_in(d["state_ops"]),
        )
    if short == "CallResult":
        return CallResult(d["invocation_id"], d["index"], d["result"], _failure_in(d["failure"]))
    if short == "CompleteAwakeable":
        return CompleteAwakeable(
            d["invocation_id"],
            d["index"],
            d["value"],
            _failure_in(d["failure"]),
            _reply_in(d["reply"]),
            _caller_in(d["caller"]),
        )
    if short == "Cancel":
        return Cancel(d["invocation_id"], d["kill"], _reply_in(d["reply"]), _caller_in(d["caller"]))
    if short == "TimerFired":
        return TimerFired(d["invocation_id"], d["index"])
    if short == "Suspend":
        return Suspend(d["invocation_id"], d["attempt"], tuple(d["waiting_on"]))
    if short == "AttemptFailed":
        return AttemptFailed(d["invocation_id"], d["attempt"], d["message"], d["retry_in_ms"])
    if short == "PurgeExpired":
        return PurgeExpired(d["retention_ms"])
    if short == "Detach":
        return Detach(d["invocation_id"], d["request_id"])
    if short == "BackupTaken":
        return BackupTaken(
            d["backup_id"], d["applied_offset"], d["first_offset"], d["keys"], d["size_bytes"]
        )
    if short == "Query":
        query_reply = _reply_in(d["reply"])
        assert query_reply is not None
        return Query(query_reply, d["request"])
    if short == "SetState":
        edit_reply = _reply_in(d["reply"])
        assert edit_reply is not None
        new_state = tuple(sorted(d["new_state"].items()))
        return SetState(d["service"], d["key"], d["version"], new_state, edit_reply)
    if short in ("Purge", "RetryNow"):
        operator_reply = _reply_in(d["reply"])
        assert operator_reply is not None
        kind = Purge if short == "Purge" else RetryNow
        return kind(d["invocation_id"], operator_reply)
    raise CodecError(f"unknown command record {name}")


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
    return _write(
        _RESPONSE,
        {
            "request_id": r.request_id,
            "invocation_id": r.invocation_id,
            "status": r.status.value,
            "result": r.result,
            "failure": _failure_out(r.failure),
        },
    )


def decode_response(data: bytes) -> Response:
    """Decodes a record of the responses topic (by hand: engine/log_bytes.py)."""
    return log_bytes.decode_response(data)


def decode_response_generic(data: bytes) -> Response:
    """The response through fastavro's generic reader (the reference of engine/log_bytes.py)."""
    d = _read(_RESPONSE, data)
    return Response(
        d["request_id"],
        d["invocation_id"],
        ResponseStatus(d["status"]),
        d["result"],
        _failure_in(d["failure"]),
    )


# --- stored values -----------------------------------------------------------------------------


STATUS_CACHE = StatusCache(size=2048, max_bytes=1024)
"""Statuses written lately, by their bytes (see :class:`engine.status_cache.StatusCache`)."""


def encode_status(s: InvocationStatus) -> bytes:
    """Encodes an invocation's status for the partition store (by hand: engine/store_bytes.py,
    the same bytes as :func:`encode_status_generic`)."""
    data = store_bytes.encode_status(s)
    STATUS_CACHE.put(data, s)
    return data


def encode_status_generic(s: InvocationStatus) -> bytes:
    """The status through fastavro's generic writer: the reference the hand-written encoding
    is tested against."""
    return _write(
        _STATUS,
        {
            "invocation_id": s.invocation_id,
            "target": _target_out(s.target),
            "input": b"",
            "phase": s.phase.value,
            "created_ms": s.created_ms,
            "retry_count": s.retry_count,
            "journal_length": s.journal_length,
            "idempotency_key": s.idempotency_key,
            "waiters": [],
            "result": s.result,
            "failure": _failure_out(s.failure),
            "completed_ms": s.completed_ms,
            "last_error": s.last_error,
            "headers": dict(s.headers),
            "handler_kind": s.handler_kind.value,
            "caller": _caller_out(s.caller),
            "execute_at_ms": s.execute_at_ms,
            "suspended_on": list(s.suspended_on),
            "cancel_requested": s.cancel_requested,
        },
    )


def decode_status(data: bytes) -> InvocationStatus:
    """Decodes an invocation's status from the partition store."""
    cached = STATUS_CACHE.get(data)
    if cached is not None:
        return cached
    return store_bytes.decode_status(data)


def decode_status_generic(data: bytes) -> InvocationStatus:
    """The status through fastavro's generic reader (the reference of engine/store_bytes.py)."""
    d = _read(_STATUS, data)
    return InvocationStatus(
        invocation_id=d["invocation_id"],
        target=_target_in(d["target"]),
        phase=Phase(d["phase"]),
        created_ms=d["created_ms"],
        retry_count=d["retry_count"],
        journal_length=d["journal_length"],
        idempotency_key=d["idempotency_key"],
        result=d["result"],
        failure=_failure_in(d["failure"]),
        completed_ms=d["completed_ms"],
        last_error=d["last_error"],
        headers=_headers_in(d["headers"]),
        handler_kind=HandlerKind(d["handler_kind"]),
        caller=_caller_in(d["caller"]),
        execute_at_ms=d["execute_at_ms"],
        suspended_on=tuple(d["suspended_on"]),
        cancel_requested=d["cancel_requested"],
    )


def encode_entry(e: JournalEntry) -> bytes:
    """Encodes a journal entry for the partition store (by hand: engine/store_bytes.py, the
    same bytes as :func:`encode_entry_generic`)."""
    return store_bytes.encode_entry(e)


def encode_entry_generic(e: JournalEntry) -> bytes:
    """The entry through fastavro's generic writer: the reference the hand-written encoding
    is tested against."""
    return _write(_ENTRY, _entry_out(e))


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
    return _entry_in(_read(_ENTRY, data))
