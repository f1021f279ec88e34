"""Restate's service protocol: the frames and messages, and the journal an SDK replays (issue 16).

Table-driven, no broker and no SDK: the messages are the classes protoc generates from
Restate's protocol.proto (checked to be what the vendored file generates), and the journal is
checked against the completion-id rule of Restate's shared core (one id per awaiting command and
per state read, two per call).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from perdure.engine.deployments import PIN_ENTRY, STATE_ENTRY, Deployment
from perdure.engine.model import (
    CallSpec,
    EntryKind,
    Failure,
    HandlerKind,
    JournalEntry,
    ServiceKind,
    StateOp,
    StateOpKind,
    Target,
)
from perdure.engine.records import StartInvocation
from perdure.partitions.remote import restate_protocol_pb2 as pb
from perdure.partitions.remote import wire as w
from perdure.partitions.remote.commands import AnswerReader
from perdure.partitions.remote.journal import (
    ProtocolError,
    RefusedCommand,
    UnsupportedCommand,
    replay,
    start_frame,
)

START = StartInvocation(
    "inv_1abcdefghijklmnopqrstuvwxyz2345",
    Target("cart", "checkout", "c-1"),
    b'{"a":1}',
    (),
    0,
    (("x-h", "v"),),
    HandlerKind.EXCLUSIVE,
    (("items", b"[1]"),),
)
DEP = Deployment("dp_x", "http://h:9080", "2", 6, ("cart",), 1)
PIN = JournalEntry(EntryKind.RUN, PIN_ENTRY, value=DEP.to_json())


def kinds(service: str, handler: str) -> tuple[ServiceKind, HandlerKind] | None:
    return {"payments": (ServiceKind.SERVICE, HandlerKind.SERVICE)}.get(service)


REMOTE = Path(w.__file__).resolve().parent


def test_the_generated_classes_are_what_the_vendored_proto_generates(tmp_path: Path) -> None:
    protoc = [sys.executable, "-m", "grpc_tools.protoc", f"-I{REMOTE}", f"--python_out={tmp_path}"]
    subprocess.run([*protoc, f"--pyi_out={tmp_path}", "restate_protocol.proto"], check=True)
    for name in ("restate_protocol_pb2.py", "restate_protocol_pb2.pyi"):
        fresh = (tmp_path / name).read_text()
        assert (REMOTE / name).read_text() == fresh, f"run deploy/restate_protocol.sh ({name})"


def test_a_body_that_is_not_its_message_is_a_wire_error() -> None:
    with pytest.raises(w.WireError, match="does not parse"):
        w.Frame(w.RUN, b"\x12\x09short").message()
    with pytest.raises(w.WireError, match="no message"):
        w.Frame(0x7777).message()


def v(content: bytes) -> pb.Value:
    return pb.Value(content=content)


def test_frames_split_anywhere_are_read_whole() -> None:
    frames = [
        w.frame(w.RUN, pb.RunCommandMessage(result_completion_id=1, name="a")),
        w.Frame(w.END),
    ]
    stream = b"".join(f.to_bytes() for f in frames)
    reader = w.FrameReader()
    got = [f for i in range(len(stream)) for f in reader.feed(stream[i : i + 1])]
    assert got == frames and reader.pending == 0


def test_replay_recomputes_completion_ids_with_the_sdks_rule() -> None:
    read = StateOp(StateOpKind.READ, "items", b"[1]")
    journal = [
        PIN,
        JournalEntry(EntryKind.RUN, "reserve", value=b"1", state_ops=(read,)),
        JournalEntry(EntryKind.SLEEP, "", value=b"1700000000000", completed=True),
        JournalEntry(
            EntryKind.CALL,
            "",
            value=b'"paid"',
            call=CallSpec(Target("payments", "pay"), HandlerKind.SERVICE, b"{}", "inv_callee"),
        ),
        JournalEntry(EntryKind.RUN, "boom", failure=Failure(500, "no")),
        JournalEntry(EntryKind.RUN, STATE_ENTRY, state_ops=(StateOp(StateOpKind.CLEAR, "x"),)),
    ]
    r = replay(START, journal)
    assert [f.name for f in r.frames] == [
        "INPUT",
        "GET_EAGER_STATE",
        "RUN",
        "RUN_COMPLETION",
        "SLEEP",
        "SLEEP_COMPLETION",
        "CALL",
        "CALL_INVOCATION_ID",
        "CALL_COMPLETION",
        "RUN",
        "RUN_COMPLETION",
        "CLEAR_STATE",
    ]
    f = {i: x.message() for i, x in enumerate(r.frames)}
    assert f[0].value.content == b'{"a":1}' and f[0].headers[0].key == "x-h"
    assert f[1].key == b"items" and f[1].value.content == b"[1]"
    assert f[2].result_completion_id == 2, "the eager read took completion id 1"
    assert f[4].result_completion_id == 3 and f[4].wake_up_time == 1700000000000
    assert (f[6].invocation_id_notification_idx, f[6].result_completion_id) == (4, 5)
    assert f[7].invocation_id == "inv_callee"
    assert f[8].completion_id == 5 and f[8].value.content == b'"paid"'
    assert f[10].failure.message == "no"
    assert r.next_completion == 7
    assert r.index_of == {2: 1, 3: 2, 4: 3, 5: 3, 6: 4}
    start = start_frame(START, len(r.frames)).message()
    assert start.known_entries == 12 and start.key == "c-1"
    assert (start.state_map[0].key, start.state_map[0].value) == (b"items", b"[1]")


def _answer(*frames: w.Frame, next_completion: int = 1) -> AnswerReader:
    reader = AnswerReader(START, 1, next_completion, kinds)
    for f in frames:
        if reader.feed(f):
            break
    return reader


def test_an_answer_becomes_entries_with_their_state_ops() -> None:
    reader = _answer(
        w.frame(w.GET_EAGER_STATE, pb.GetEagerStateCommandMessage(key=b"items", value=v(b"[1]"))),
        w.frame(w.SET_STATE, pb.SetStateCommandMessage(key=b"items", value=v(b"[1,2]"))),
        w.frame(w.RUN, pb.RunCommandMessage(result_completion_id=2, name="charge")),
        w.frame(
            w.PROPOSE_RUN_COMPLETION,
            pb.ProposeRunCompletionMessage(result_completion_id=2, value=b'"ch_1"'),
        ),
        w.frame(
            w.CALL,
            pb.CallCommandMessage(
                service_name="payments",
                handler_name="pay",
                parameter=b"{}",
                invocation_id_notification_idx=3,
                result_completion_id=4,
            ),
        ),
        w.frame(w.CLEAR_ALL_STATE, pb.ClearAllStateCommandMessage()),
        w.frame(w.SUSPENSION, pb.SuspensionMessage(waiting_completions=[4], waiting_signals=[1])),
    )
    a = reader.answer
    run, called = (n.entry for n in a.entries)
    assert run.kind is EntryKind.RUN and run.value == b'"ch_1"' and run.name == "charge"
    assert [op.kind for op in run.state_ops] == [StateOpKind.READ, StateOpKind.SET]
    assert called.call is not None and called.call.target == Target("payments", "pay")
    assert called.call.callee_id.startswith("inv_")
    assert [op.kind for op in a.trailing_ops] == [StateOpKind.CLEAR_ALL]
    assert a.suspended_on == (4,)


def test_a_run_without_its_result_is_left_to_run_again() -> None:
    reader = _answer(
        w.frame(w.RUN, pb.RunCommandMessage(result_completion_id=1, name="slow")),
        w.frame(w.SUSPENSION, pb.SuspensionMessage(waiting_completions=[1])),
    )
    assert reader.answer.entries[0].run_completion == 1


@pytest.mark.parametrize(
    ("frame", "error", "message"),
    [
        (
            w.frame(w.RUN, pb.RunCommandMessage(result_completion_id=3)),
            ProtocolError,
            "completion id 3 where 1 was next",
        ),
        (
            w.frame(w.GET_LAZY_STATE, pb.GetLazyStateCommandMessage(key=b"k")),
            UnsupportedCommand,
            "GET_LAZY_STATE",
        ),
        (
            w.frame(
                w.CALL,
                pb.CallCommandMessage(
                    service_name="payments",
                    handler_name="p",
                    headers=[pb.Header(key="h", value="v")],
                    invocation_id_notification_idx=1,
                ),
            ),
            UnsupportedCommand,
            "headers",
        ),
        (
            w.frame(
                w.CALL,
                pb.CallCommandMessage(
                    service_name="nope",
                    handler_name="p",
                    invocation_id_notification_idx=1,
                    result_completion_id=2,
                ),
            ),
            ProtocolError,
            "registered",
        ),
        (
            w.frame(
                w.PROPOSE_RUN_COMPLETION, pb.ProposeRunCompletionMessage(result_completion_id=9)
            ),
            ProtocolError,
            "no run awaits",
        ),
        (w.frame(w.SUSPENSION, pb.SuspensionMessage()), ProtocolError, "waiting for nothing"),
    ],
)
def test_what_cannot_be_journaled_is_a_clear_error(
    frame: w.Frame, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        _answer(frame)


def test_the_deployment_record_reads_back() -> None:
    assert Deployment.from_json(DEP.to_json()) == DEP
    assert json.loads(DEP.to_json())["v"] == 1
    with pytest.raises(ValueError, match="not a deployment record"):
        Deployment.from_json(b'{"id": "x"}')


def test_a_resolved_awakeable_replays_as_its_signal() -> None:
    from perdure.engine import awakeables

    waiting = JournalEntry(EntryKind.AWAKEABLE, awakeables.entry_name(17), completed=False)
    done = JournalEntry(EntryKind.AWAKEABLE, awakeables.entry_name(18), value=b'"ok"')
    frames = replay(START, [PIN, waiting, done]).frames
    assert [f.name for f in frames] == ["INPUT", "SIGNAL"]
    signal = frames[1].message()
    assert signal.idx == 18 and signal.value.content == b'"ok"'


@pytest.mark.parametrize(
    "frame",
    [
        w.frame(w.SET_STATE, pb.SetStateCommandMessage(key=b"items", value=v(b"[1,2]"))),
        w.frame(w.CLEAR_STATE, pb.ClearStateCommandMessage(key=b"items")),
        w.frame(w.CLEAR_ALL_STATE, pb.ClearAllStateCommandMessage()),
    ],
    ids=["set", "clear", "clear all"],
)
def test_a_shared_handler_that_changes_state_is_a_protocol_error(frame: w.Frame) -> None:
    """Issue 31, fault 5: a Restate SDK's shared handler wrote beside the key's exclusive one."""
    shared = replace(START, handler_kind=HandlerKind.SHARED)
    reader = AnswerReader(shared, 1, 1, kinds)
    reader.feed(
        w.frame(w.GET_EAGER_STATE, pb.GetEagerStateCommandMessage(key=b"items", value=v(b"[1]")))
    )
    with pytest.raises(ProtocolError, match="may not change state"):
        reader.feed(frame)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            w.frame(w.SET_STATE, pb.SetStateCommandMessage(key=b"k" * 70_000, value=v(b"1"))),
            "70000 bytes",
        ),
        (
            w.frame(w.GET_EAGER_STATE, pb.GetEagerStateCommandMessage(key=b"\xff\xfe", void={})),
            "not UTF-8",
        ),
        (
            w.frame(
                w.CALL,
                pb.CallCommandMessage(
                    service_name="payments",
                    handler_name="p",
                    key="k" * 70_000,
                    invocation_id_notification_idx=1,
                    result_completion_id=2,
                ),
            ),
            "the key of a call",
        ),
    ],
    ids=["a long state key", "a state key not UTF-8", "a long call key"],
)
def test_a_command_outside_the_byte_formats_is_refused(frame: w.Frame, message: str) -> None:
    """Issue 31: a Restate SDK's command is an edge too; it fails the invocation with a 400."""
    with pytest.raises(RefusedCommand, match=message):
        _answer(frame)


def test_a_replay_tells_completions_in_the_order_they_came() -> None:
    """Issue 31, fault 8: a race replayed each result right after its command, so a handler
    that branched on the winner could take another branch on replay."""
    sleep = JournalEntry(EntryKind.SLEEP, "timeout", b"1700000000000", completed=True)
    call = JournalEntry(
        EntryKind.CALL,
        "pay",
        b'"paid"',
        call=CallSpec(Target("payments", "pay"), HandlerKind.SERVICE, b"{}", "inv_callee"),
        completed=True,
    )
    after = JournalEntry(EntryKind.RUN, "next", b'"n"')
    journal = [sleep, call, after]
    # The call's result came first, then the timer, both before the step after them.
    raced = replace(START, state=(), notified=((1, 2), (0, 2)))
    names = [f.name for f in replay(raced, journal).frames]
    assert names == [
        "INPUT",
        "SLEEP",
        "CALL",
        "CALL_INVOCATION_ID",
        "CALL_COMPLETION",
        "SLEEP_COMPLETION",
        "RUN",
        "RUN_COMPLETION",
    ]
    # The timer fired after the step was journaled: its notification follows the step.
    late = replace(START, state=(), notified=((1, 2), (0, 3)))
    names = [f.name for f in replay(late, journal).frames]
    assert names[-3:] == ["RUN", "RUN_COMPLETION", "SLEEP_COMPLETION"]
    # Without a recorded order (an older worker's journal), each follows its command.
    names = [f.name for f in replay(replace(START, state=()), journal).frames]
    assert names[1:3] == ["SLEEP", "SLEEP_COMPLETION"]
