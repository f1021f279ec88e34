"""Between Perdure's journal and the journal a Restate SDK replays.

A remote invocation's Perdure journal holds, after the entry that pins its deployment, one entry
per Restate command that has an outcome or needs the engine: ``run`` (with the proposed result),
``sleep``, ``call`` and ``send``. State commands ride on the next entry as state ops, like those of
in-process handlers. :func:`replay` turns the entries back into the SDK's journal (commands, each
followed by the notifications it has had), recomputing the completion ids with the SDK's rule: one
per command that awaits something and per state read (even an eager one, answered inline), two
for a call. :class:`AnswerReader` reads what the SDK
answered and turns its new commands into entries to propose.

What this stage does not carry (a clear terminal error names it): lazy state, durable promises,
attach and get-output, signals and awakeables, calls with headers or idempotency keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from perdure.engine import awakeables
from perdure.engine.deployments import PIN_ENTRY, STATE_ENTRY
from perdure.engine.model import (
    READ_KINDS,
    EntryKind,
    JournalEntry,
    StateOp,
    StateOpKind,
)
from perdure.engine.records import StartInvocation
from perdure.partitions.remote import restate_protocol_pb2 as pb
from perdure.partitions.remote import wire as w
from perdure.partitions.remote.wire import Frame


class UnsupportedCommand(Exception):
    """The SDK used a command Perdure cannot run yet: the invocation fails terminally."""


class RefusedCommand(UnsupportedCommand):
    """A command outside the byte formats' limits (engine/limits.py): the invocation fails
    terminally with a 400, before anything of it is journaled."""


class ProtocolError(Exception):
    """The SDK's answer breaks the protocol (a retryable failure of the attempt)."""


@dataclass
class Replay:
    """The SDK's view of a journal: its frames, and where each completion id lives."""

    frames: list[Frame]
    next_completion: int
    """The completion id the SDK's next awaiting command takes."""
    index_of: dict[int, int]
    """Completion id to the index of the Perdure entry that completes it."""


def outcome_of(entry: JournalEntry) -> dict[str, Any]:
    """A notification's result (its ``value`` or its ``failure``), as message fields."""
    if entry.failure is not None:
        return {"failure": pb.Failure(code=entry.failure.code, message=entry.failure.message)}
    return {"value": pb.Value(content=entry.value or b"")}


def _state_frame(op: StateOp) -> Frame | None:
    key = op.name.encode()
    if op.kind is StateOpKind.SET:
        return w.frame(w.SET_STATE, pb.SetStateCommandMessage(key=key, value=_value(op.value)))
    if op.kind is StateOpKind.CLEAR:
        return w.frame(w.CLEAR_STATE, pb.ClearStateCommandMessage(key=key))
    if op.kind is StateOpKind.CLEAR_ALL:
        return w.frame(w.CLEAR_ALL_STATE, pb.ClearAllStateCommandMessage())
    if op.kind is StateOpKind.READ:
        read = pb.GetEagerStateCommandMessage(key=key)
        if op.value is None:
            read.void.SetInParent()
        else:
            read.value.content = op.value
        return w.frame(w.GET_EAGER_STATE, read)
    if op.kind is StateOpKind.READ_KEYS:
        names = [n.encode() for n in json.loads(op.value or b"[]")]
        keys = pb.GetEagerStateKeysCommandMessage(value=pb.StateKeys(keys=names))
        return w.frame(w.GET_EAGER_STATE_KEYS, keys)
    return None


def _value(content: bytes | None) -> pb.Value:
    return pb.Value(content=content or b"")


def start_frame(start: StartInvocation, known: int) -> Frame:
    """The attempt's ``Start``: its id, key, the full state (eager), how many entries follow."""
    ident = start.invocation_id.encode()
    message = pb.StartMessage(
        id=ident,
        debug_id=start.invocation_id,
        known_entries=known,
        state_map=[pb.StartMessage.StateEntry(key=k.encode(), value=v) for k, v in start.state],
        partial_state=False,
        key=start.target.key or "",
        retry_count_since_last_stored_entry=start.attempt,
        random_seed=int.from_bytes(ident[-8:].rjust(8, b"\0"), "big"),
    )
    return w.frame(w.START, message)


def replay(start: StartInvocation, journal: list[JournalEntry]) -> Replay:
    """The frames an attempt sends: Input, then each entry's state ops and command, and the
    notifications in the order they came.

    A notification the partition recorded the order of (``start.notified``: a timer, a call's
    result, a promise, a signal that completed while pending) goes after the last command the
    journal held when it came, in the order they came, as in Restate's own journal: a race the
    handler ran takes the same branch on replay. Any other completion (a step's result; one
    recorded by a worker older than that record) follows its command.
    """
    given = pb.InputCommandMessage(
        headers=[pb.Header(key=k, value=v) for k, v in start.headers], value=_value(start.input)
    )
    frames = [w.frame(w.INPUT, given)]
    cid = 1
    index_of: dict[int, int] = {}
    payload = b""
    came_after = {index: length for index, length in start.notified}
    order = [index for index, _ in start.notified]
    held: dict[int, Frame] = {}
    """Notifications that wait for their place in the order they came."""
    sent: set[int] = set()

    def place(after: int) -> None:
        """Sends, in the order they came, the held notifications that came once the journal
        held ``after`` entries or fewer (each after its own command: it was held there)."""
        for index in order:
            if index in held and index not in sent and came_after[index] <= after:
                frames.append(held.pop(index))
                sent.add(index)

    def notify(index: int, frame: Frame) -> None:
        if index in came_after:
            held[index] = frame
        else:
            frames.append(frame)

    for index, entry in enumerate(journal):
        box = [cid]
        _replay_entry(index, entry, frames, notify, index_of, box, payload)
        cid = box[0]
        if entry.kind is EntryKind.RUN and entry.name == PAYLOAD_ENTRY:
            payload = entry.value or b""  # the next entry's command, as the SDK sent it
        place(index + 1)
    place(len(journal) + len(order))
    for index in order:  # one out of the recorded order (never expected): still sent
        if index in held:
            frames.append(held.pop(index))
    return Replay(frames, cid, index_of)


def _replay_entry(
    index: int,
    entry: JournalEntry,
    frames: list[Frame],
    notify: Callable[[int, Frame], None],
    index_of: dict[int, int],
    cid_box: list[int],
    payload: bytes,
) -> None:
    """Appends one entry's state ops and command, and hands its notification to ``notify``."""
    cid = cid_box[0]
    if index == 0 and entry.name == PIN_ENTRY:
        return
    for op in entry.state_ops:
        state_frame = _state_frame(op)
        if state_frame is not None:
            frames.append(state_frame)
        if op.kind in READ_KINDS:
            cid += 1  # an eager read takes a completion id too (its result is inline)
    kind = entry.kind
    if kind is EntryKind.RUN and entry.name == PAYLOAD_ENTRY:
        pass
    elif kind is EntryKind.RUN:
        if entry.name != STATE_ENTRY:
            frames.append(
                w.frame(w.RUN, pb.RunCommandMessage(result_completion_id=cid, name=entry.name))
            )
            done = pb.RunCompletionNotificationMessage(completion_id=cid, **outcome_of(entry))
            frames.append(w.frame(w.RUN_COMPLETION, done))
            index_of[cid] = index
            cid += 1
    elif kind is EntryKind.SLEEP:
        wake = int(entry.value or b"0")
        sleep = pb.SleepCommandMessage(wake_up_time=wake, result_completion_id=cid, name=entry.name)
        frames.append(w.frame(w.SLEEP, sleep))
        if entry.completed:
            notify(index, w.frame(w.SLEEP_COMPLETION, slept_notification(cid)))
        index_of[cid] = index
        cid += 1
    elif kind in (EntryKind.CALL, EntryKind.SEND):
        call = entry.call
        assert call is not None
        t = call.target
        common: dict[str, Any] = {
            "service_name": t.service,
            "handler_name": t.handler,
            "parameter": call.input,
            "key": t.key or "",
            "invocation_id_notification_idx": cid,
            "name": entry.name,
        }
        if kind is EntryKind.CALL:
            called = pb.CallCommandMessage(result_completion_id=cid + 1, **common)
            frames.append(w.frame(w.CALL, called))
        else:
            # invoke_time is not part of a replayed send's identity (the SDK ignores it).
            frames.append(w.frame(w.ONE_WAY_CALL, pb.OneWayCallCommandMessage(**common)))
        frames.append(w.frame(w.CALL_INVOCATION_ID, callee_notification(cid, call.callee_id)))
        index_of[cid] = index
        if kind is EntryKind.CALL:
            index_of[cid + 1] = index
            if entry.completed:
                result = outcome_of(entry)
                returned = pb.CallCompletionNotificationMessage(completion_id=cid + 1, **result)
                notify(index, w.frame(w.CALL_COMPLETION, returned))
            cid += 2
        else:
            cid += 1
    elif kind in _PROMISE_COMMANDS:
        command = _PROMISE_COMMANDS[kind][0]
        if kind is EntryKind.COMPLETE_PROMISE:
            frames.append(w.Frame(command, payload))
        else:
            asked = w.MESSAGE_OF[command](key=entry.name, result_completion_id=cid)
            frames.append(w.frame(command, asked))
        if entry.completed:
            notify(index, promise_notification(entry, cid))
        index_of[cid] = index
        cid += 1
    elif kind is EntryKind.AWAKEABLE and awakeables.signal_of(entry.name) is not None:
        if entry.completed:  # a signal takes no completion id
            idx = awakeables.signal_of(entry.name)
            signal = pb.SignalNotificationMessage(idx=idx, **outcome_of(entry))
            notify(index, w.frame(w.SIGNAL, signal))
    else:
        raise UnsupportedCommand(f"journal entry {index} ({kind.value}) has no Restate form")
    cid_box[0] = cid


PAYLOAD_ENTRY = "restate:command"
"""A ``run`` entry holding the next entry's command as the SDK sent it, for what the engine
rewrites when it journals it (a promise's completion keeps only whether it took)."""

_PROMISE_COMMANDS = {
    EntryKind.GET_PROMISE: (w.GET_PROMISE, w.GET_PROMISE_COMPLETION),
    EntryKind.PEEK_PROMISE: (w.PEEK_PROMISE, w.PEEK_PROMISE_COMPLETION),
    EntryKind.COMPLETE_PROMISE: (w.COMPLETE_PROMISE, w.COMPLETE_PROMISE_COMPLETION),
}


def promise_notification(entry: JournalEntry, cid: int) -> Frame:
    """The notification of a promise entry: a failure, a value, or void (a peek of nothing, a
    completion that took)."""
    completion = _PROMISE_COMMANDS[entry.kind][1]
    message = w.MESSAGE_OF[completion](completion_id=cid)
    if entry.failure is not None:
        message.failure.code = entry.failure.code
        message.failure.message = entry.failure.message
    elif entry.kind is not EntryKind.GET_PROMISE and (
        entry.kind is EntryKind.COMPLETE_PROMISE or entry.value is None
    ):
        message.void.SetInParent()
    else:
        message.value.content = entry.value or b""
    return w.frame(completion, message)


def callee_notification(
    cid: int, callee_id: str
) -> pb.CallInvocationIdCompletionNotificationMessage:
    """The notification of a call's or send's invocation id."""
    return pb.CallInvocationIdCompletionNotificationMessage(
        completion_id=cid, invocation_id=callee_id
    )


def slept_notification(cid: int) -> Any:
    """The notification of a timer that fired."""
    slept = pb.SleepCompletionNotificationMessage(completion_id=cid)
    slept.void.SetInParent()
    return slept
