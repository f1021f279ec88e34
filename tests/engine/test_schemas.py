"""The byte formats, derived from the records' dataclasses, never change meaning.

``schemas_v1.json`` holds the Parsing Canonical Form (what decides the bytes) of every schema of
format version 1, taken from the hand-written schemas the derivation replaced. A change to a
record's dataclass that would change its bytes fails here.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from pathlib import Path

import fastavro
import pytest
from fastavro.schema import to_parsing_canonical_form

from perdure.engine import codec, schemas
from perdure.engine.avro_records import AvroRecord, Retired
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

PINNED = json.loads((Path(__file__).with_name("schemas_v1.json")).read_text())


def _canonical(schema: dict[str, typing.Any], named: dict[str, typing.Any]) -> str:
    return str(to_parsing_canonical_form(fastavro.parse_schema(schema, named_schemas=named)))


def test_every_schema_is_the_pinned_one() -> None:
    named: dict[str, typing.Any] = {}
    for schema in schemas.NAMED_TYPES:
        assert _canonical(schema, named) == PINNED[schema["name"]], schema["name"]
    for name in ("ENVELOPE", "RESPONSE", "INVOCATION_STATUS", "JOURNAL_ENTRY"):
        assert _canonical(getattr(schemas, name), dict(named)) == PINNED[name], name


R = Reply(3, "req-1")
T = Target("svc", "h", "k")
F = Failure(409, "no")
C = Caller("inv_1", 7)
E = JournalEntry(
    EntryKind.CALL,
    "svc/h",
    None,
    None,
    (StateOp(StateOpKind.SET, "n", b"1"), StateOp(StateOpKind.READ, "m")),
    CallSpec(T, HandlerKind.EXCLUSIVE, b"{}", "inv_2", 5),
    False,
)
EVERY_COMMAND = [
    Invoke(
        "inv_1", T, b"[1]", R, "idem", True, (("a", "1"), ("b", "2")), HandlerKind.WORKFLOW, C, 9
    ),
    Attach("inv_1", R, True),
    AnnounceLeader("w-1"),
    ProposeEntry("inv_1", 2, 4, E),
    Complete("inv_1", 2, None, F, (StateOp(StateOpKind.CLEAR_ALL),)),
    CallResult("inv_1", 4, b"2", None),
    CompleteAwakeable("inv_1", 4, None, F, R, C),
    Cancel("inv_1", True, R, C),
    TimerFired("inv_1", 4),
    Suspend("inv_1", 2, (4, 6)),
    AttemptFailed("inv_1", 2, "boom", 2**40),
    PurgeExpired(86_400_000),
    Detach("inv_1", "req-1"),
    BackupTaken("b-1", 10, 2, 300, 4096),
    Query(R, '{"q": 1}'),
    SetState("svc", "k", "v1", (("a", b"1"), ("b", b"2")), R),
    Purge("inv_1", R),
    RetryNow("inv_1", R),
]


def test_the_list_of_commands_covers_the_union() -> None:
    assert [type(c) for c in EVERY_COMMAND] == list(schemas.COMMANDS)


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=lambda c: type(c).__name__)
def test_every_command_reads_back_as_written(command: typing.Any) -> None:
    env = Envelope(command, 3, "w-1", 1_700_000_000_000)
    data = codec.encode_envelope_generic(env)
    assert codec.decode_envelope_generic(data, env.timestamp_ms) == env
    assert codec.decode_envelope(codec.encode_envelope(env), env.timestamp_ms) == env


def test_stored_values_and_responses_read_back_as_written() -> None:
    status = InvocationStatus(
        "inv_1", T, Phase.RUNNING, 1, 2, 3, "idem", b"r", F, 4, "err", (("h", "v"),),
        HandlerKind.EXCLUSIVE, C, 5, (1, 2), True,
    )  # fmt: skip
    assert codec.decode_status_generic(codec.encode_status_generic(status)) == status
    assert codec.decode_entry_generic(codec.encode_entry_generic(E)) == E
    response = Response("req-1", "inv_1", ResponseStatus.OK, b"1", None)
    assert codec.decode_response_generic(codec.encode_response_generic(response)) == response


def test_a_type_without_an_avro_form_is_refused_when_derived() -> None:
    @dataclass(frozen=True)
    class Odd:
        x: float

    with pytest.raises(TypeError, match="no Avro form"):
        AvroRecord.of(Odd)


def test_a_format_has_one_set_of_retired_fields() -> None:
    other = [Retired("input", after="target", avro_type="string", value="")]
    with pytest.raises(ValueError, match="retired"):
        AvroRecord.of(InvocationStatus, retired=other)
