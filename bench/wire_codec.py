"""Restate's protocol messages: the hand-written codec against protobuf's generated classes.

    python -m bench.wire_codec [--rounds 5]

Generates Python from ``partitions/remote/restate_protocol.proto`` (grpcio-tools' protoc, into a
temporary folder) and times, for the messages of one three-step invocation on the remote path,
encoding what Perdure sends (the start, the input, three run completions) and decoding what the
SDK answers (three run commands, three proposed completions, the output), reading the fields
Perdure reads. It first checks that both give the same bytes and the same values. Prints
microseconds per invocation and the ratio generated / hand-written (both in the same run).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from perdure.partitions.remote import wire as w

PROTO = Path(__file__).resolve().parents[1] / "partitions" / "remote" / "restate_protocol.proto"
STATE = [(b"count", b"41"), (b"name", b'"ada"')]
HEADERS = [("content-type", "application/json"), ("x-request", "abc")]


def generate(into: Path) -> ModuleType:
    """The generated module of :data:`PROTO` (upb, protobuf's C backend, where installed)."""
    protoc = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO.parent}"]
    subprocess.run([*protoc, f"--python_out={into}", PROTO.name], check=True)
    made = into / "restate_protocol_pb2.py"
    spec = importlib.util.spec_from_file_location("restate_protocol_pb2", made)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cases(pb: Any) -> dict[str, Callable[[], Any]]:
    def hand_encode() -> list[bytes]:
        start = [(1, b"\x01" * 26), (2, "inv_1abcdefghijklmnopqrstuvwx"), (3, 4)]
        start += [(4, [(1, k), (2, v)]) for k, v in STATE] + [(6, "alice"), (9, 12345)]
        given = [(1, [(1, k), (2, v)]) for k, v in HEADERS] + [(14, [(1, b'{"n": 1}')])]
        runs = [w.encode([(1, i), (5, [(1, b'"ok"')])]) for i in (1, 2, 3)]
        return [w.encode(start), w.encode(given), *runs]

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
            f = w.Fields.parse(data)
            out.append((f.uint(11), f.string(12)))
        for data in proposed:
            f = w.Fields.parse(data)
            out.append((f.uint(1), w.Outcome.read(f, 14, 15, bare_value=True).value))
        out.append(w.Outcome.read(w.Fields.parse(output), 14, 15).value)
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
    with tempfile.TemporaryDirectory(prefix="perdure-wire-") as tmp:
        pb = generate(Path(tmp))
    from google.protobuf.internal import api_implementation

    run = cases(pb)
    hand, generated = run["encode: hand"](), run["encode: generated"]()
    # The same message: the start's fields may come in another order, the rest byte for byte.
    assert w.Fields.parse(hand[0]).values == w.Fields.parse(generated[0]).values
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
