"""The hand-written encodings of the hot log records are fastavro's, byte for byte."""

from __future__ import annotations

import random

import pytest

from perdure.engine import codec, log_bytes, schemas
from perdure.engine.errors import CodecError
from perdure.engine.model import Caller, Failure, HandlerKind, Reply, StateOp, StateOpKind, Target
from perdure.engine.records import (
    Cancel,
    Complete,
    Envelope,
    Invoke,
    ProposeEntry,
    Response,
    ResponseStatus,
    TimerFired,
)
from tests.engine.test_store_bytes import random_entry


def _text(rng: random.Random) -> str:
    return rng.choice(["", "inv_0123456789abcdef", "ключ-é", "x" * 300])


def _maybe_bytes(rng: random.Random) -> bytes | None:
    return None if rng.random() < 0.3 else rng.randbytes(rng.choice([0, 7, 5000]))


def _failure(rng: random.Random) -> Failure | None:
    return Failure(rng.randrange(-2, 600), _text(rng)) if rng.random() < 0.3 else None


def random_command(rng: random.Random) -> Invoke | ProposeEntry | Complete | TimerFired:
    kind = rng.randrange(4)
    if kind == 0:
        headers = tuple((rng.choice("aab"), _text(rng)) for _ in range(rng.randrange(3)))
        return Invoke(
            _text(rng),
            Target("svc", _text(rng), rng.choice([None, "", "k"])),
            rng.randbytes(rng.choice([0, 3, 900])),
            Reply(rng.randrange(64), _text(rng)) if rng.random() < 0.6 else None,
            rng.choice([None, "idem"]),
            rng.random() < 0.3,
            headers,
            rng.choice(list(HandlerKind)),
            Caller(_text(rng), rng.randrange(99)) if rng.random() < 0.3 else None,
            rng.choice([0, 1, 2**40]),
        )
    if kind == 1:
        return ProposeEntry(_text(rng), rng.randrange(9), rng.randrange(2**20), random_entry(rng))
    if kind == 2:
        ops = tuple(
            StateOp(rng.choice(list(StateOpKind)), _text(rng), _maybe_bytes(rng))
            for _ in range(rng.choice([0, 2]))
        )
        return Complete(_text(rng), rng.randrange(9), _maybe_bytes(rng), _failure(rng), ops)
    return TimerFired(_text(rng), rng.choice([0, 5, 0xFFFFFFFF]))


def test_the_hot_envelopes_encode_to_fastavros_bytes() -> None:
    rng = random.Random(8)
    for _ in range(4000):
        env = Envelope(random_command(rng), rng.choice([0, 1, 2**33]), rng.choice(["", "w-1"]))
        data = log_bytes.encode_envelope(env)
        assert data == codec.encode_envelope_generic(env), env
        assert codec.decode_envelope(data, 7).epoch == env.epoch  # readable, too


def test_the_other_commands_go_to_fastavro() -> None:
    env = Envelope(Cancel("inv_1"), 3)
    assert log_bytes.encode_envelope(env) is None
    assert codec.encode_envelope(env) == codec.encode_envelope_generic(env)


def test_the_branches_are_the_commands_places_in_the_union() -> None:
    (command,) = [f for f in schemas.ENVELOPE["fields"] if f["name"] == "command"]
    names = [member["name"] for member in command["type"]]
    assert names.index("Invoke") == log_bytes.INVOKE_BRANCH
    assert names.index("ProposeEntry") == log_bytes.PROPOSE_ENTRY_BRANCH
    assert names.index("Complete") == log_bytes.COMPLETE_BRANCH
    assert names.index("TimerFired") == log_bytes.TIMER_FIRED_BRANCH


def test_responses_encode_to_fastavros_bytes_and_back() -> None:
    rng = random.Random(9)
    for _ in range(2000):
        r = Response(
            _text(rng),
            _text(rng),
            rng.choice(list(ResponseStatus)),
            _maybe_bytes(rng),
            _failure(rng),
        )
        data = log_bytes.encode_response(r)
        assert data == codec.encode_response_generic(r), r
        assert log_bytes.decode_response(data) == codec.decode_response_generic(data) == r


def test_the_hot_envelopes_decode_as_fastavro_decodes_them() -> None:
    rng = random.Random(10)
    for _ in range(3000):
        env = Envelope(random_command(rng), rng.choice([0, 1, 2**33]), rng.choice(["", "w-1"]))
        data = codec.encode_envelope_generic(env)
        assert log_bytes.decode_envelope(data, 5) == codec.decode_envelope_generic(data, 5)


def test_a_cut_or_padded_record_is_an_error_not_a_record() -> None:
    rng = random.Random(12)
    for _ in range(500):
        env = Envelope(random_command(rng), 1)
        data = codec.encode_envelope(env)
        cut = data[: rng.randrange(len(data))]
        with pytest.raises(CodecError):
            codec.decode_envelope(cut, 0)
        with pytest.raises(CodecError):
            codec.decode_envelope(data + b"\x00", 0)
    response = codec.encode_response(Response("r", "inv_1", ResponseStatus.OK, b"1"))
    for n in range(len(response)):
        with pytest.raises(CodecError):
            codec.decode_response(response[:n])


def test_garbage_is_an_error_or_what_fastavro_reads() -> None:
    """Real records with a byte or two changed: the hand reader either refuses one or reads
    exactly what fastavro reads. Most mutants still decode (random bytes almost never do: a
    fuzz of those checked nothing), and the test says how many it compared."""
    rng = random.Random(13)
    compared = refused = 0
    for _ in range(3000):
        data = bytearray(codec.encode_envelope(Envelope(random_command(rng), 1, "w")))
        for _ in range(rng.randrange(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            got = log_bytes.decode_envelope(bytes(data), 0)
        except CodecError:
            refused += 1
            continue
        if got is None:
            continue  # not a hot record: fastavro's alone
        try:
            reference = codec.decode_envelope_generic(bytes(data), 0)
        except CodecError:
            raise AssertionError(f"read by hand, refused by fastavro: {bytes(data)!r}") from None
        assert got == reference
        compared += 1
    assert compared > 1000 and refused > 50, (compared, refused)
