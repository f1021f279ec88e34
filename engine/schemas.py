"""Avro schemas of every byte format the engine writes: log records, responses, stored values.

A byte format never changes meaning. A change that old readers cannot read gets a new version
number in ``SCHEMA_VERSION`` (carried in the ``perdure-v`` record header) and a reader for the
old one; fields are only ever added with defaults.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1
"""The version of the envelope schema written into the ``perdure-v`` header."""

VERSION_HEADER = "perdure-v"
"""Kafka record header naming the schema version of the value."""

_NS = "dev.perdure.v1"

FAILURE: dict[str, Any] = {
    "type": "record",
    "name": "Failure",
    "namespace": _NS,
    "fields": [{"name": "code", "type": "int"}, {"name": "message", "type": "string"}],
}

TARGET: dict[str, Any] = {
    "type": "record",
    "name": "Target",
    "namespace": _NS,
    "fields": [
        {"name": "service", "type": "string"},
        {"name": "handler", "type": "string"},
        {"name": "key", "type": ["null", "string"], "default": None},
    ],
}

REPLY: dict[str, Any] = {
    "type": "record",
    "name": "Reply",
    "namespace": _NS,
    "fields": [{"name": "partition", "type": "int"}, {"name": "request_id", "type": "string"}],
}

HEADERS: dict[str, Any] = {"type": "map", "values": "string"}

STATE_OP: dict[str, Any] = {
    "type": "record",
    "name": "StateOp",
    "namespace": _NS,
    "fields": [
        {"name": "kind", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "value", "type": ["null", "bytes"], "default": None},
    ],
}

CALL_SPEC: dict[str, Any] = {
    "type": "record",
    "name": "CallSpec",
    "namespace": _NS,
    "fields": [
        {"name": "target", "type": f"{_NS}.Target"},
        {"name": "handler_kind", "type": "string"},
        {"name": "input", "type": "bytes"},
        {"name": "callee_id", "type": "string"},
        {"name": "delay_ms", "type": "long", "default": 0},
    ],
}

CALLER: dict[str, Any] = {
    "type": "record",
    "name": "Caller",
    "namespace": _NS,
    "fields": [{"name": "invocation_id", "type": "string"}, {"name": "index", "type": "int"}],
}

_STATE_OPS: dict[str, Any] = {"type": "array", "items": f"{_NS}.StateOp"}

JOURNAL_ENTRY: dict[str, Any] = {
    "type": "record",
    "name": "JournalEntry",
    "namespace": _NS,
    "fields": [
        {"name": "kind", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "value", "type": ["null", "bytes"], "default": None},
        {"name": "failure", "type": ["null", f"{_NS}.Failure"], "default": None},
        {"name": "state_ops", "type": _STATE_OPS, "default": []},
        {"name": "call", "type": ["null", f"{_NS}.CallSpec"], "default": None},
        {"name": "completed", "type": "boolean", "default": True},
    ],
}

INVOKE: dict[str, Any] = {
    "type": "record",
    "name": "Invoke",
    "namespace": _NS,
    "fields": [
        {"name": "invocation_id", "type": "string"},
        {"name": "target", "type": f"{_NS}.Target"},
        {"name": "input", "type": "bytes"},
        {"name": "reply", "type": ["null", f"{_NS}.Reply"], "default": None},
        {"name": "idempotency_key", "type": ["null", "string"], "default": None},
        {"name": "send", "type": "boolean", "default": False},
        {"name": "headers", "type": HEADERS, "default": {}},
        {"name": "handler_kind", "type": "string", "default": ""},
        {"name": "caller", "type": ["null", f"{_NS}.Caller"], "default": None},
        {"name": "delay_ms", "type": "long", "default": 0},
    ],
}

ATTACH: dict[str, Any] = {
    "type": "record",
    "name": "Attach",
    "namespace": _NS,
    "fields": [
        {"name": "invocation_id", "type": "string"},
        {"name": "reply", "type": f"{_NS}.Reply"},
        {"name": "block", "type": "boolean"},
    ],
}

ANNOUNCE_LEADER: dict[str, Any] = {
    "type": "record",
    "name": "AnnounceLeader",
    "namespace": _NS,
    "fields": [{"name": "leader_id", "type": "string"}],
}

PROPOSE_ENTRY: dict[str, Any] = {
    "type": "record",
    "name": "ProposeEntry",
    "namespace": _NS,
    "fields": [
        {"name": "invocation_id", "type": "string"},
        {"name": "attempt", "type": "int"},
        {"name": "index", "type": "int"},
        {"name": "entry", "type": f"{_NS}.JournalEntry"},
    ],
}

COMPLETE: dict[str, Any] = {
    "type": "record",
    "name": "Complete",
    "namespace": _NS,
    "fields": [
        {"name": "invocation_id", "type": "string"},
        {"name": "attempt", "type": "int"},
        {"name": "result", "type": ["null", "bytes"], "default": None},
        {"name": "failure", "type": ["null", f"{_NS}.Failure"], "default": None},
        {"name": "state_ops", "type": _STATE_OPS, "default": []},
    ],
}

CALL_RESULT: dict[str, Any] = {
    "type": "record",
    "name": "CallResult",
    "namespace": _NS,
    "fields": [
        {"name": "invocation_id", "type": "string"},
        {"name": "index", "type": "int"},
        {"name": "result", "type": ["null", "bytes"], "default": None},
        {"name": "failure", "type": ["null", f"{_NS}.Failure"], "default": None},
    ],
}

COMPLETE_AWAKEABLE: dict[str, Any] = {
    "type": "record",
    "name": "CompleteAwakeable",
    "namespace": _NS,
    "fields": [
        {"name": "invocation_id", "type": "string"},
        {"name": "index", "type": "int"},
        {"name": "value", "type": ["null", "bytes"], "default": None},
        {"name": "failure", "type": ["null", f"{_NS}.Failure"], "default": None},
        {"name": "reply", "type": ["null", f"{_NS}.Reply"], "default": None},
        {"name": "caller", "type": ["null", f"{_NS}.Caller"], "default": None},
    ],
}

CANCEL: dict[str, Any] = {
    "type": "record",
    "name": "Cancel",
    "namespace": _NS,
    "fields": [
        {"name": "invocation_id", "type": "string"},
        {"name": "kill", "type": "boolean", "default": False},
        {"name": "reply", "type": ["null", f"{_NS}.Reply"], "default": None},
        {"name": "caller", "type": ["null", f"{_NS}.Caller"], "default": None},
    ],
}

TIMER_FIRED: dict[str, Any] = {
    "type": "record",
    "name": "TimerFired",
    "namespace": _NS,
    "fields": [{"name": "invocation_id", "type": "string"}, {"name": "index", "type": "int"}],
}

SUSPEND: dict[str, Any] = {
    "type": "record",
    "name": "Suspend",
    "namespace": _NS,
    "fields": [
        {"name": "invocation_id", "type": "string"},
        {"name": "attempt", "type": "int"},
        {"name": "waiting_on", "type": {"type": "array", "items": "int"}},
    ],
}

ATTEMPT_FAILED: dict[str, Any] = {
    "type": "record",
    "name": "AttemptFailed",
    "namespace": _NS,
    "fields": [
        {"name": "invocation_id", "type": "string"},
        {"name": "attempt", "type": "int"},
        {"name": "message", "type": "string"},
        {"name": "retry_in_ms", "type": "long"},
    ],
}

PURGE_EXPIRED: dict[str, Any] = {
    "type": "record",
    "name": "PurgeExpired",
    "namespace": _NS,
    "fields": [{"name": "retention_ms", "type": "long"}],
}

DETACH: dict[str, Any] = {
    "type": "record",
    "name": "Detach",
    "namespace": _NS,
    "fields": [
        {"name": "invocation_id", "type": "string"},
        {"name": "request_id", "type": "string"},
    ],
}

BACKUP_TAKEN: dict[str, Any] = {
    "type": "record",
    "name": "BackupTaken",
    "namespace": _NS,
    "fields": [
        {"name": "backup_id", "type": "string"},
        {"name": "applied_offset", "type": "long"},
        {"name": "first_offset", "type": "long"},
        {"name": "keys", "type": "long"},
        {"name": "size_bytes", "type": "long"},
    ],
}

QUERY: dict[str, Any] = {
    "type": "record",
    "name": "Query",
    "namespace": _NS,
    "fields": [
        {"name": "reply", "type": f"{_NS}.Reply"},
        {"name": "request", "type": "string"},
    ],
}

SET_STATE: dict[str, Any] = {
    "type": "record",
    "name": "SetState",
    "namespace": _NS,
    "fields": [
        {"name": "service", "type": "string"},
        {"name": "key", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "new_state", "type": {"type": "map", "values": "bytes"}},
        {"name": "reply", "type": f"{_NS}.Reply"},
    ],
}

PURGE: dict[str, Any] = {
    "type": "record",
    "name": "Purge",
    "namespace": _NS,
    "fields": [
        {"name": "invocation_id", "type": "string"},
        {"name": "reply", "type": f"{_NS}.Reply"},
    ],
}

RETRY_NOW: dict[str, Any] = {
    "type": "record",
    "name": "RetryNow",
    "namespace": _NS,
    "fields": [
        {"name": "invocation_id", "type": "string"},
        {"name": "reply", "type": f"{_NS}.Reply"},
    ],
}

ENVELOPE: dict[str, Any] = {
    "type": "record",
    "name": "Envelope",
    "namespace": _NS,
    "fields": [
        {"name": "epoch", "type": "long"},
        {"name": "origin", "type": "string"},
        {
            "name": "command",
            "type": [
                INVOKE,
                ATTACH,
                ANNOUNCE_LEADER,
                PROPOSE_ENTRY,
                COMPLETE,
                CALL_RESULT,
                COMPLETE_AWAKEABLE,
                CANCEL,
                TIMER_FIRED,
                SUSPEND,
                ATTEMPT_FAILED,
                PURGE_EXPIRED,
                # New kinds go at the end: the union index of the older ones never changes, so
                # their bytes stay the same and older readers still read them.
                DETACH,
                BACKUP_TAKEN,
                QUERY,
                SET_STATE,
                PURGE,
                RETRY_NOW,
            ],
        },
    ],
}

RESPONSE: dict[str, Any] = {
    "type": "record",
    "name": "Response",
    "namespace": _NS,
    "fields": [
        {"name": "request_id", "type": "string"},
        {"name": "invocation_id", "type": "string"},
        {"name": "status", "type": "string"},
        {"name": "result", "type": ["null", "bytes"], "default": None},
        {"name": "failure", "type": ["null", f"{_NS}.Failure"], "default": None},
    ],
}

INVOCATION_STATUS: dict[str, Any] = {
    "type": "record",
    "name": "InvocationStatus",
    "namespace": _NS,
    "fields": [
        {"name": "invocation_id", "type": "string"},
        {"name": "target", "type": f"{_NS}.Target"},
        # Empty since store format 2 (the input is stored under keys.INPUT).
        {"name": "input", "type": "bytes"},
        {"name": "phase", "type": "string"},
        {"name": "created_ms", "type": "long"},
        {"name": "retry_count", "type": "int"},
        {"name": "journal_length", "type": "int"},
        {"name": "idempotency_key", "type": ["null", "string"], "default": None},
        # Empty since store format 2 (waiters are stored under keys.WAITER).
        {"name": "waiters", "type": {"type": "array", "items": f"{_NS}.Reply"}},
        {"name": "result", "type": ["null", "bytes"], "default": None},
        {"name": "failure", "type": ["null", f"{_NS}.Failure"], "default": None},
        {"name": "completed_ms", "type": ["null", "long"], "default": None},
        {"name": "last_error", "type": ["null", "string"], "default": None},
        {"name": "headers", "type": HEADERS, "default": {}},
        {"name": "handler_kind", "type": "string", "default": ""},
        {"name": "caller", "type": ["null", f"{_NS}.Caller"], "default": None},
        {"name": "execute_at_ms", "type": ["null", "long"], "default": None},
        {"name": "suspended_on", "type": {"type": "array", "items": "int"}, "default": []},
        {"name": "cancel_requested", "type": "boolean", "default": False},
    ],
}

# The named types must be known before the records that use them.
NAMED_TYPES: list[dict[str, Any]] = [
    FAILURE,
    TARGET,
    REPLY,
    STATE_OP,
    CALL_SPEC,
    CALLER,
    JOURNAL_ENTRY,
]
