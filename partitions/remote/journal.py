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
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from perdure.engine import awakeables
from perdure.engine.deployments import PIN_ENTRY, STATE_ENTRY
from perdure.engine.ids import InvocationId, call_uid, workflow_run_id
from perdure.engine.limits import LimitExceeded, check_delay_ms, check_name
from perdure.engine.model import (
    READ_KINDS,
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
from perdure.partitions.remote import wire as w
from perdure.partitions.remote.wire import Fields, Frame, Outcome


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


def outcome_fields(entry: JournalEntry) -> w.FieldList:
    """A notification's result: field 6 failure, field 5 value."""
    if entry.failure is not None:
        return [(6, w.failure(entry.failure.code, entry.failure.message))]
    return [(5, w.value(entry.value or b""))]


def _state_frame(op: StateOp) -> Frame | None:
    key = op.name.encode()
    if op.kind is StateOpKind.SET:
        return w.frame(w.SET_STATE, [(1, key), (3, w.value(op.value or b""))])
    if op.kind is StateOpKind.CLEAR:
        return w.frame(w.CLEAR_STATE, [(1, key)])
    if op.kind is StateOpKind.CLEAR_ALL:
        return w.frame(w.CLEAR_ALL_STATE, [])
    if op.kind is StateOpKind.READ:
        result = [(13, [])] if op.value is None else [(14, w.value(op.value))]
        return w.frame(w.GET_EAGER_STATE, [(1, key), *result])
    if op.kind is StateOpKind.READ_KEYS:
        names = json.loads(op.value or b"[]")
        return w.frame(w.GET_EAGER_STATE_KEYS, [(14, [(1, n.encode()) for n in names])])
    return None


def start_frame(start: StartInvocation, known: int) -> Frame:
    """The attempt's ``Start``: its id, key, the full state (eager), how many entries follow."""
    state = [(4, [(1, k.encode()), (2, v)]) for k, v in start.state]
    return w.frame(
        w.START,
        [
            (1, start.invocation_id.encode()),
            (2, start.invocation_id),
            (3, known),
            *state,
            (5, False),
            (6, start.target.key or ""),
            (7, start.attempt),
            (9, int.from_bytes(start.invocation_id.encode()[-8:].rjust(8, b"\0"), "big")),
        ],
    )


def replay(start: StartInvocation, journal: list[JournalEntry]) -> Replay:
    """The frames an attempt sends: Input, then each entry's state ops and command, and the
    notifications in the order they came.

    A notification the partition recorded the order of (``start.notified``: a timer, a call's
    result, a promise, a signal that completed while pending) goes after the last command the
    journal held when it came, in the order they came, as in Restate's own journal: a race the
    handler ran takes the same branch on replay. Any other completion (a step's result; one
    recorded by a worker older than that record) follows its command.
    """
    headers = [(1, [(1, k), (2, v)]) for k, v in start.headers]
    frames = [w.frame(w.INPUT, [*headers, (14, w.value(start.input))])]
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
            frames.append(w.frame(w.RUN, [(11, cid), (12, entry.name)]))
            frames.append(w.frame(w.RUN_COMPLETION, [(1, cid), *outcome_fields(entry)]))
            index_of[cid] = index
            cid += 1
    elif kind is EntryKind.SLEEP:
        wake = int(entry.value or b"0")
        frames.append(w.frame(w.SLEEP, [(1, wake), (11, cid), (12, entry.name)]))
        if entry.completed:
            notify(index, w.frame(w.SLEEP_COMPLETION, [(1, cid), (4, [])]))
        index_of[cid] = index
        cid += 1
    elif kind in (EntryKind.CALL, EntryKind.SEND):
        call = entry.call
        assert call is not None
        t = call.target
        common = [(1, t.service), (2, t.handler), (3, call.input)]
        if kind is EntryKind.CALL:
            fields = [*common, (5, t.key or ""), (10, cid), (11, cid + 1), (12, entry.name)]
            frames.append(w.frame(w.CALL, fields))
        else:
            # invoke_time is not part of a replayed send's identity (the SDK ignores it).
            fields = [*common, (6, t.key or ""), (10, cid), (12, entry.name)]
            frames.append(w.frame(w.ONE_WAY_CALL, fields))
        frames.append(w.frame(w.CALL_INVOCATION_ID, [(1, cid), (16, call.callee_id)]))
        index_of[cid] = index
        if kind is EntryKind.CALL:
            index_of[cid + 1] = index
            if entry.completed:
                result = outcome_fields(entry)
                notify(index, w.frame(w.CALL_COMPLETION, [(1, cid + 1), *result]))
            cid += 2
        else:
            cid += 1
    elif kind in _PROMISE_COMMANDS:
        command, completion = _PROMISE_COMMANDS[kind]
        if kind is EntryKind.COMPLETE_PROMISE:
            frames.append(w.Frame(command, payload))
        else:
            frames.append(w.frame(command, [(1, entry.name), (11, cid), (12, "")]))
        if entry.completed:
            notify(index, w.frame(completion, [(1, cid), *promise_outcome(entry)]))
        index_of[cid] = index
        cid += 1
    elif kind is EntryKind.AWAKEABLE and awakeables.signal_of(entry.name) is not None:
        if entry.completed:  # a signal takes no completion id
            idx = awakeables.signal_of(entry.name)
            notify(index, w.frame(w.SIGNAL, [(2, idx), *outcome_fields(entry)]))
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


def promise_outcome(entry: JournalEntry) -> w.FieldList:
    """Field 6 a failure, 5 a value, 4 void (a peek of nothing, a completion that took)."""
    if entry.failure is not None:
        return [(6, w.failure(entry.failure.code, entry.failure.message))]
    if entry.kind is EntryKind.COMPLETE_PROMISE or entry.value is None:
        return [(4, [])]
    return [(5, w.value(entry.value))]


CalleeKinds = Callable[[str, str], tuple[ServiceKind, HandlerKind] | None]
"""The kind of a service and of one of its handlers, from the registry."""


@dataclass
class NewEntry:
    """A journal entry the SDK's answer asks for, and the completion ids it takes."""

    entry: JournalEntry
    completions: tuple[int, ...] = ()
    run_completion: int | None = None
    """A ``run`` waits for its proposal (the closure's result) before it can be journaled."""


@dataclass
class Answer:
    """What one ``/invoke`` exchange ended with, and the entries it asks to journal."""

    entries: list[NewEntry] = field(default_factory=list)
    trailing_ops: list[StateOp] = field(default_factory=list)
    """State ops after the last entry (they ride on the output, or on a state entry)."""
    output: Outcome | None = None
    suspended_on: tuple[int, ...] | None = None
    """Completion ids the SDK waits for, when it suspended."""
    waiting_signals: tuple[int, ...] = ()
    """Signals (awakeables, from index 17 on) the SDK waits for, when it suspended."""

    @property
    def signals(self) -> tuple[int, ...]:
        """The awakeables among the signals it waits for (not the built-in cancel)."""
        return tuple(i for i in self.waiting_signals if i >= w.FIRST_USER_SIGNAL)

    @property
    def journals_at_end(self) -> bool:
        """It suspended leaving something to journal after its last entry: state changes, or
        the awakeables it waits for."""
        return self.suspended_on is not None and bool(self.trailing_ops or self.signals)

    error: str | None = None
    """The SDK's error: the attempt failed (retryable)."""
    error_retry_ms: int | None = None
    """The delay the SDK asks for before the next attempt (``next_retry_delay``: a step's own
    retry policy), overriding the deployment's for that one retry."""


class AnswerReader:
    """Turns the frames of one answer into new entries, checking the SDK's completion ids."""

    def __init__(
        self, start: StartInvocation, base_index: int, next_completion: int, kinds: CalleeKinds
    ) -> None:
        self._start = start
        self._writes_state = start.handler_kind in (HandlerKind.EXCLUSIVE, HandlerKind.WORKFLOW)
        self._base = base_index
        self._cid = next_completion
        self._kinds = kinds
        self.answer = Answer()
        self._ops: list[StateOp] = []
        self._runs: dict[int, NewEntry] = {}
        self._done = False

    def _take(self, number: int, cid: int) -> None:
        if cid != self._cid:
            raise ProtocolError(
                f"the SDK gave completion id {cid} where {self._cid} was next: its journal and "
                "Perdure's disagree"
            )
        self._cid += number

    def _add(self, entry: JournalEntry, completions: tuple[int, ...]) -> NewEntry:
        new = NewEntry(entry, completions)
        if self._ops:
            new.entry = _with_ops(entry, self._ops)
            self._ops = []
        self.answer.entries.append(new)
        return new

    def feed(self, f: Frame) -> bool:
        """Reads one frame; True once the answer ended (End, Suspension or Error)."""
        m = f.fields
        t = f.type
        if t in (w.SET_STATE, w.CLEAR_STATE, w.CLEAR_ALL_STATE) and not self._writes_state:
            # A shared handler runs beside the key's exclusive one: it may only read.
            raise ProtocolError(
                f"a {self._start.handler_kind.value or 'service'} handler may not change state "
                "(only exclusive and workflow handlers write it)"
            )
        if t == w.SET_STATE:
            v = m.message(3)
            self._ops.append(StateOp(StateOpKind.SET, _key(m), v.raw(1) if v else b""))
        elif t == w.CLEAR_STATE:
            self._ops.append(StateOp(StateOpKind.CLEAR, _key(m)))
        elif t == w.CLEAR_ALL_STATE:
            self._ops.append(StateOp(StateOpKind.CLEAR_ALL))
        elif t == w.GET_EAGER_STATE:
            v = m.message(14)
            self._ops.append(StateOp(StateOpKind.READ, _key(m), v.raw(1) if v else None))
            self._cid += 1
        elif t == w.GET_EAGER_STATE_KEYS:
            keys = m.message(14)
            names = [k.decode(errors="replace") for k in _raws(keys, 1)] if keys else []
            self._ops.append(StateOp(StateOpKind.READ_KEYS, "", json.dumps(names).encode()))
            self._cid += 1
        elif t == w.RUN:
            cid = m.uint(11)
            self._take(1, cid)
            new = self._add(JournalEntry(EntryKind.RUN, m.string(12)), (cid,))
            new.run_completion = cid
            self._runs[cid] = new
        elif t == w.PROPOSE_RUN_COMPLETION:
            cid = m.uint(1)
            if cid not in self._runs:
                raise ProtocolError(f"a run result for completion {cid}, which no run awaits")
            new = self._runs.pop(cid)
            o = Outcome.read(m, 14, 15, bare_value=True)
            failure = Failure(*o.failure) if o.failure else None
            new.entry = replace(
                new.entry, value=o.value if failure is None else None, failure=failure
            )
            new.run_completion = None
        elif t == w.SLEEP:
            cid = m.uint(11)
            self._take(1, cid)
            duration = max(m.uint(1) - int(time.time() * 1000), 0)
            entry = JournalEntry(
                EntryKind.SLEEP, m.string(12), str(duration).encode(), completed=False
            )
            self._add(entry, (cid,))
        elif t in (w.GET_PROMISE, w.PEEK_PROMISE, w.COMPLETE_PROMISE):
            self._promise(f, m)
        elif t in (w.CALL, w.ONE_WAY_CALL):
            self._call(f, m)
        elif t == w.OUTPUT:
            self.answer.output = Outcome.read(m, 14, 15)
        elif t == w.END:
            self._end()
            return True
        elif t == w.SUSPENSION:
            waiting, signals = m.uints(1), m.uints(2)
            if not waiting and not signals and m.has(4):  # V7: a tree of futures
                future = m.message(4)
                waiting, signals = (future.uints(1), future.uints(2)) if future else ([], [])
            self._end()
            self.answer.suspended_on = tuple(waiting)
            self.answer.waiting_signals = tuple(signals)
            return True
        elif t == w.ERROR:
            self.answer.error = f"{m.uint(1)} {m.string(2)}".strip()
            self.answer.error_retry_ms = m.uint(8) if m.has(8) else None
            self._end()
            return True
        elif t == w.AWAITING_ON:
            pass  # advisory only
        else:
            raise UnsupportedCommand(
                f"the handler used {f.name}, which Perdure does not run for Restate SDKs yet"
            )
        return False

    def _call(self, f: Frame, m: Fields) -> None:
        send = f.type == w.ONE_WAY_CALL
        service, handler, param = m.string(1), m.string(2), m.raw(3)
        headers = m.messages(5 if send else 4)
        idem = m.optional_string(7 if send else 6)
        if headers or idem:
            raise UnsupportedCommand(
                f"a call to {service}/{handler} with headers or an idempotency key"
            )
        key = _checked(m.string(6 if send else 5), f"the key of a call to {service}/{handler}")
        notify = m.uint(10)
        self._take(1, notify)
        if not send:
            self._take(1, m.uint(11))
        kinds = self._kinds(service, handler)
        if kinds is None:
            raise ProtocolError(f"the handler calls {service}/{handler}, which is not registered")
        service_kind, handler_kind = kinds
        index = self._base + len(self.answer.entries)
        uid = call_uid(self._start.invocation_id, index)
        target_key: str | None = key if service_kind is not ServiceKind.SERVICE else None
        if handler_kind is HandlerKind.WORKFLOW:
            callee = str(workflow_run_id(service, key))
        elif target_key is not None:
            callee = str(InvocationId.for_key(target_key.encode(), uid))
        else:
            callee = str(InvocationId.new_unkeyed(uid))
        delay_ms = 0
        if send and m.uint(4):
            delay_ms = max(m.uint(4) - int(time.time() * 1000), 0)
            try:
                check_delay_ms(delay_ms, f"the delay of a send to {service}/{handler}")
            except LimitExceeded as err:
                raise RefusedCommand(str(err)) from None
        spec = CallSpec(Target(service, handler, target_key), handler_kind, param, callee, delay_ms)
        kind = EntryKind.SEND if send else EntryKind.CALL
        ids = (notify,) if send else (notify, m.uint(11))
        self._add(JournalEntry(kind, m.string(12), call=spec, completed=False), ids)

    def _promise(self, f: Frame, m: Fields) -> None:
        if m.string(12):
            raise UnsupportedCommand(f"a named {f.name} (its name is not journaled)")
        cid = m.uint(11)
        self._take(1, cid)
        key = _checked(m.string(1), "a promise name")
        if f.type == w.COMPLETE_PROMISE:
            # The engine journals only whether it took: the command itself goes first.
            self._add(JournalEntry(EntryKind.RUN, PAYLOAD_ENTRY, value=f.body), ())
            o = Outcome.read(m, 2, 3)
            failure = Failure(*o.failure) if o.failure else None
            value = None if failure else o.value
            entry = JournalEntry(EntryKind.COMPLETE_PROMISE, key, value, failure, completed=False)
        elif f.type == w.GET_PROMISE:
            entry = JournalEntry(EntryKind.GET_PROMISE, key, completed=False)
        else:
            entry = JournalEntry(EntryKind.PEEK_PROMISE, key, completed=False)
        self._add(entry, (cid,))

    def _end(self) -> None:
        self._done = True
        self.answer.trailing_ops = self._ops
        self._ops = []


def _with_ops(entry: JournalEntry, ops: list[StateOp]) -> JournalEntry:
    return replace(entry, state_ops=(*entry.state_ops, *ops))


def _key(m: Fields) -> str:
    try:
        return _checked(m.raw(1).decode(), "a state key")
    except UnicodeDecodeError:
        # Replacing the bad bytes would make distinct keys one.
        raise RefusedCommand("a state key that is not UTF-8") from None


def _checked(name: str, what: str) -> str:
    try:
        return check_name(name, what)
    except LimitExceeded as err:
        raise RefusedCommand(str(err)) from None


def _raws(m: Fields, number: int) -> list[bytes]:
    return [v for v in m.values.get(number, []) if isinstance(v, bytes)]
