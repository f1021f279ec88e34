"""Restate's protocol messages: protobuf's generated classes against the hand-written codec.

    python -m bench.wire_codec [--rounds 5]

Perdure read and wrote Restate's protocol with a hand-written protobuf codec until it switched to
the classes protoc generates from Restate's protocol.proto (partitions/remote/wire.py); that codec
is kept here, as it was (a050fcb, partitions/restate_wire.py), as the baseline. For the messages
of one three-step invocation on the remote path this times encoding what Perdure sends (the
start, the input, three run completions) and decoding what the SDK answers (three run commands,
three proposed completions, the output), reading the fields Perdure reads, after checking that
both give the same bytes and the same values. Prints microseconds per invocation and the ratio
generated / hand-written, measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.internal import api_implementation

from perdure.partitions.remote import restate_protocol_pb2 as pb
from perdure.partitions.remote import wire

STATE = [(b"count", b"41"), (b"name", b'"ada"')]
HEADERS = [("content-type", "application/json"), ("x-request", "abc")]


# -- the hand-written codec (the baseline) --------------------------------------------------------

Value = int | bytes
FieldList = Sequence[tuple[int, Any]]


class WireError(ValueError):
    pass


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def encode(fields: FieldList) -> bytes:
    """A protobuf message from ``(number, value)`` pairs, in order.

    An ``int`` is a varint, ``bytes`` (and ``str``, as UTF-8) length-delimited, a list of pairs
    an embedded message; ``None`` is left out (an unset optional field).
    """
    out = bytearray()
    for number, value in fields:
        if value is None:
            continue
        if isinstance(value, bool | int):
            out += _varint(number << 3) + _varint(int(value))
            continue
        if isinstance(value, str):
            data = value.encode()
        elif isinstance(value, bytes | bytearray):
            data = bytes(value)
        else:
            data = encode(value)
        out += _varint(number << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


@dataclass(frozen=True)
class Fields:
    """A decoded protobuf message: the values of each field number, in wire order."""

    values: dict[int, list[Value]] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes) -> Fields:
        """Reads a message; raises :class:`WireError` on malformed bytes."""
        values: dict[int, list[Value]] = {}
        pos, end = 0, len(data)
        try:
            while pos < end:
                key, pos = _read_varint(data, pos)
                number, wire = key >> 3, key & 7
                value: Value
                if wire == 0:
                    value, pos = _read_varint(data, pos)
                elif wire == 2:
                    size, pos = _read_varint(data, pos)
                    if pos + size > end:
                        raise WireError("a field runs past the end of its message")
                    value, pos = data[pos : pos + size], pos + size
                elif wire == 1:
                    value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
                elif wire == 5:
                    value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
                else:
                    raise WireError(f"unsupported protobuf wire type {wire}")
                values.setdefault(number, []).append(value)
        except IndexError:
            raise WireError("a message ends inside a varint") from None
        return cls(values)

    def has(self, number: int) -> bool:
        return number in self.values

    def uint(self, number: int) -> int:
        got = self.values.get(number)
        return int(got[-1]) if got else 0

    def uints(self, number: int) -> list[int]:
        """A repeated uint32, packed or not."""
        out: list[int] = []
        for v in self.values.get(number, []):
            if isinstance(v, int):
                out.append(v)
            else:
                pos = 0
                while pos < len(v):
                    n, pos = _read_varint(v, pos)
                    out.append(n)
        return out

    def raw(self, number: int) -> bytes:
        got = self.values.get(number)
        return bytes(got[-1]) if got and isinstance(got[-1], bytes) else b""

    def string(self, number: int) -> str:
        return self.raw(number).decode("utf-8", errors="replace")

    def optional_string(self, number: int) -> str | None:
        return self.string(number) if number in self.values else None

    def message(self, number: int) -> Fields | None:
        return Fields.parse(self.raw(number)) if number in self.values else None

    def messages(self, number: int) -> list[Fields]:
        return [Fields.parse(v) for v in self.values.get(number, []) if isinstance(v, bytes)]


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _outcome(fields: Fields, value_field: int, failure_field: int, bare: bool = False) -> Any:
    f = fields.message(failure_field)
    if f is not None:
        return (f.uint(1), f.string(2))
    if bare:
        return fields.raw(value_field)
    v = fields.message(value_field)
    return v.raw(1) if v is not None else b""


def cases() -> dict[str, Callable[[], Any]]:
    def hand_encode() -> list[bytes]:
        start = [(1, b"\x01" * 26), (2, "inv_1abcdefghijklmnopqrstuvwx"), (3, 4)]
        start += [(4, [(1, k), (2, v)]) for k, v in STATE] + [(6, "alice"), (9, 12345)]
        given = [(1, [(1, k), (2, v)]) for k, v in HEADERS] + [(14, [(1, b'{"n": 1}')])]
        runs = [encode([(1, i), (5, [(1, b'"ok"')])]) for i in (1, 2, 3)]
        return [encode(start), encode(given), *runs]

    def generated_encode() -> list[bytes]:
        entries = [pb.StartMessage.StateEntry(key=k, value=v) for k, v in STATE]
        start = pb.StartMessage(
            id=b"\x01" * 26,
            debug_id="inv_1abcdefghijklmnopqrstuvwx",
            known_entries=4,
            state_map=entries,
            key="alice",
            random_seed=12345,
        )
        given = pb.InputCommandMessage(
            headers=[pb.Header(key=k, value=v) for k, v in HEADERS],
            value=pb.Value(content=b'{"n": 1}'),
        )
        runs = [
            pb.RunCompletionNotificationMessage(completion_id=i, value=pb.Value(content=b'"ok"'))
            for i in (1, 2, 3)
        ]
        return [m.SerializeToString() for m in (start, given, *runs)]

    commands = [
        pb.RunCommandMessage(result_completion_id=i, name=f"step-{i}").SerializeToString()
        for i in (1, 2, 3)
    ]
    proposed = [
        pb.ProposeRunCompletionMessage(result_completion_id=i, value=b'"ok"').SerializeToString()
        for i in (1, 2, 3)
    ]
    output = pb.OutputCommandMessage(value=pb.Value(content=b'{"done": true}')).SerializeToString()

    def hand_decode() -> list[Any]:
        out: list[Any] = []
        for data in commands:
            f = Fields.parse(data)
            out.append((f.uint(11), f.string(12)))
        for data in proposed:
            f = Fields.parse(data)
            out.append((f.uint(1), _outcome(f, 14, 15, bare=True)))
        out.append(_outcome(Fields.parse(output), 14, 15))
        return out

    def generated_decode() -> list[Any]:
        out: list[Any] = []
        for data in commands:
            c = pb.RunCommandMessage.FromString(data)
            out.append((c.result_completion_id, c.name))
        for data in proposed:
            p = pb.ProposeRunCompletionMessage.FromString(data)
            out.append((p.result_completion_id, p.value if p.HasField("value") else None))
        o = pb.OutputCommandMessage.FromString(output)
        out.append(o.value.content if o.HasField("value") else None)
        return out

    return {
        "encode: hand": hand_encode,
        "encode: generated": generated_encode,
        "decode: hand": hand_decode,
        "decode: generated": generated_decode,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args(argv)
    run = cases()
    assert wire.MESSAGE_OF[wire.RUN] is pb.RunCommandMessage  # the classes Perdure runs
    hand, generated = run["encode: hand"](), run["encode: generated"]()
    # The same message: the start's fields may come in another order, the rest byte for byte.
    assert Fields.parse(hand[0]).values == Fields.parse(generated[0]).values
    assert hand[1:] == generated[1:], "the two codecs disagree"
    assert run["decode: hand"]() == run["decode: generated"](), "the two codecs read differently"
    times = {
        name: min(timeit.repeat(fn, number=args.number, repeat=args.rounds)) / args.number * 1e6
        for name, fn in run.items()
    }
    print(f"protobuf backend: {api_implementation.Type()}\n")
    print("| one invocation's messages | hand-written µs | generated µs | generated / hand |")
    print("| --- | --- | --- | --- |")
    for what in ("encode", "decode"):
        h, g = times[f"{what}: hand"], times[f"{what}: generated"]
        print(f"| {what} | {h:.1f} | {g:.1f} | {g / h:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
