"""The hand-written encodings of statuses and journal entries are fastavro's, byte for byte."""

from __future__ import annotations

import random

import pytest

from perdure.engine import codec, store_bytes
from perdure.engine.errors import CodecError
from perdure.engine.model import (
    CallSpec,
    EntryKind,
    Failure,
    HandlerKind,
    InvocationStatus,
    JournalEntry,
    Phase,
    StateOp,
    StateOpKind,
    Target,
)
from tests.engine.test_status_cache import random_status


def random_entry(rng: random.Random) -> JournalEntry:
    def maybe_bytes() -> bytes | None:
        return None if rng.random() < 0.3 else rng.randbytes(rng.choice([0, 5, 200, 20_000]))

    ops = tuple(
        StateOp(rng.choice(list(StateOpKind)), rng.choice(["", "n", "ключ"]), maybe_bytes())
        for _ in range(rng.choice([0, 0, 1, 3, 70]))
    )
    call = None
    if rng.random() < 0.4:
        target = Target("svc", "h", rng.choice([None, "", "k"]))
        kind = rng.choice(list(HandlerKind))
        call = CallSpec(target, kind, rng.randbytes(9), "inv_callee", rng.randrange(-5, 2**40))
    return JournalEntry(
        rng.choice(list(EntryKind)),
        rng.choice(["", "step", "é" * 80]),
        maybe_bytes(),
        Failure(rng.randrange(-3, 600), "boom") if rng.random() < 0.3 else None,
        ops,
        call,
        rng.random() < 0.5,
    )


def test_random_statuses_encode_to_fastavros_bytes() -> None:
    rng = random.Random(5)
    for _ in range(3000):
        s = random_status(rng)
        assert store_bytes.encode_status(s) == codec.encode_status_generic(s), s


def test_random_entries_encode_to_fastavros_bytes() -> None:
    rng = random.Random(6)
    for _ in range(3000):
        e = random_entry(rng)
        data = store_bytes.encode_entry(e)
        assert data == codec.encode_entry_generic(e), e
        assert codec.decode_entry(data) == e


@pytest.mark.parametrize(
    "status",
    [
        InvocationStatus("inv_x", Target("s", "h"), Phase.RUNNING, 0),
        # Varints of every length, negative numbers, multi-byte text, a long result.
        InvocationStatus(
            "inv_é" * 40,
            Target("sérvice", "h", "ключ"),
            Phase.COMPLETED,
            2**62,
            retry_count=2**31 - 1,
            journal_length=300,
            result=b"\x00" * 70_000,
            failure=Failure(-1, "x" * 200),
            completed_ms=-(2**63),
            execute_at_ms=127,
            suspended_on=(0, 63, 64, 8191, 8192),
            headers=(("a", "1"), ("b", "\u2603")),
        ),
    ],
)
def test_edge_statuses_encode_to_fastavros_bytes(status: InvocationStatus) -> None:
    assert store_bytes.encode_status(status) == codec.encode_status_generic(status)
    assert codec.decode_status(store_bytes.encode_status(status)) == status


def test_statuses_and_entries_decode_as_fastavro_decodes_them() -> None:
    rng = random.Random(15)
    for _ in range(2000):
        data = codec.encode_status_generic(random_status(rng))
        assert store_bytes.decode_status(data) == codec.decode_status_generic(data)
        data = codec.encode_entry_generic(random_entry(rng))
        assert store_bytes.decode_entry(data) == codec.decode_entry_generic(data)


def test_a_status_of_store_format_1_with_its_waiters_inline_is_read() -> None:
    s = InvocationStatus("inv_1", Target("s", "h"), Phase.RUNNING, 5, journal_length=1)
    datum = {
        "invocation_id": "inv_1",
        "target": {"service": "s", "handler": "h", "key": None},
        "input": b"old input",
        "phase": "running",
        "created_ms": 5,
        "retry_count": 0,
        "journal_length": 1,
        "idempotency_key": None,
        "waiters": [{"partition": 3, "request_id": "r1"}, {"partition": 0, "request_id": "r2"}],
        "result": None,
        "failure": None,
        "completed_ms": None,
        "last_error": None,
        "headers": {},
        "handler_kind": "",
        "caller": None,
        "execute_at_ms": None,
        "suspended_on": [],
        "cancel_requested": False,
    }
    data = codec._write(codec._STATUS, datum)
    assert store_bytes.decode_status(data) == s == codec.decode_status_generic(data)


def test_a_cut_status_or_entry_is_an_error() -> None:
    rng = random.Random(16)
    for _ in range(300):
        data = store_bytes.encode_status(random_status(rng))
        with pytest.raises(CodecError):
            store_bytes.decode_status(data[: rng.randrange(len(data))])
        data = store_bytes.encode_entry(random_entry(rng))
        with pytest.raises(CodecError):
            store_bytes.decode_entry(data[: rng.randrange(len(data))])
