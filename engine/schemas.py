"""Avro schemas of every byte format the engine writes: log records, responses, stored values.

The schemas are derived from the records' dataclasses (engine/avro_records.py); what is
declared here is only what the formats add to them: the envelope around a command, the order of
the command union (``records.Command``), and fields a format keeps but no code reads.

A byte format never changes meaning. A change that old readers cannot read gets a new version
number in ``SCHEMA_VERSION`` (carried in the ``perdure-v`` record header) and a reader for the
old one; fields are only ever added with defaults. ``tests/engine/test_schemas.py`` pins the
canonical form of every schema here, so a change to a dataclass that would change a format
fails there first.
"""

from __future__ import annotations

import typing
from typing import Any

from perdure.engine.avro_records import NAMESPACE, AvroRecord, Retired
from perdure.engine.model import (
    Caller,
    CallSpec,
    Failure,
    InvocationStatus,
    JournalEntry,
    Reply,
    StateOp,
    Target,
)
from perdure.engine.records import Command, Response

SCHEMA_VERSION = 1
"""The version of the envelope schema written into the ``perdure-v`` header."""

VERSION_HEADER = "perdure-v"
"""Kafka record header naming the schema version of the value."""

NAMED_TYPES: list[dict[str, Any]] = [
    AvroRecord.of(t).schema
    for t in (Failure, Target, Reply, StateOp, CallSpec, Caller, JournalEntry)
]
"""The records other schemas refer to by name; known to a parser before those."""

COMMANDS: tuple[type, ...] = typing.get_args(Command)
"""The command union's members, in the union's order (its index is in every record's bytes)."""

ENVELOPE: dict[str, Any] = {
    "type": "record",
    "name": "Envelope",
    "namespace": NAMESPACE,
    # The record's timestamp travels as the Kafka record's (Envelope.timestamp_ms).
    "fields": [
        {"name": "epoch", "type": "long"},
        {"name": "origin", "type": "string"},
        {"name": "command", "type": [AvroRecord.of(c).schema for c in COMMANDS]},
    ],
}

RESPONSE: dict[str, Any] = AvroRecord.of(Response).schema

INVOCATION_STATUS_RECORD = AvroRecord.of(
    InvocationStatus,
    retired=[
        # Empty since store format 2: the input is stored under keys.INPUT ...
        Retired("input", after="target", avro_type="bytes", value=b""),
        # ... and the requests waiting for the outcome under keys.WAITER.
        Retired(
            "waiters",
            after="idempotency_key",
            avro_type={"type": "array", "items": f"{NAMESPACE}.Reply"},
            value=[],
        ),
    ],
)
INVOCATION_STATUS: dict[str, Any] = INVOCATION_STATUS_RECORD.schema

JOURNAL_ENTRY: dict[str, Any] = AvroRecord.of(JournalEntry).schema
