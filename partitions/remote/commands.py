"""An SDK's answer, read: its commands become the Perdure journal entries to propose.

:class:`AnswerReader` takes the frames of one answer in order, checks the completion ids the SDK
gives against the ones Perdure expects (partitions/remote/journal.py computes them on replay)
and turns each command into a :class:`NewEntry`; state commands ride on the next entry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from perdure.engine.ids import InvocationId, call_uid, workflow_run_id
from perdure.engine.limits import LimitExceeded, check_delay_ms, check_name
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
from perdure.partitions.remote import wire as w
from perdure.partitions.remote.journal import (
    PAYLOAD_ENTRY,
    ProtocolError,
    RefusedCommand,
    UnsupportedCommand,
)
from perdure.partitions.remote.wire import Frame, Outcome

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


_READ = frozenset(
    {
        w.SET_STATE,
        w.CLEAR_STATE,
        w.CLEAR_ALL_STATE,
        w.GET_EAGER_STATE,
        w.GET_EAGER_STATE_KEYS,
        w.RUN,
        w.PROPOSE_RUN_COMPLETION,
        w.SLEEP,
        w.GET_PROMISE,
        w.PEEK_PROMISE,
        w.COMPLETE_PROMISE,
        w.CALL,
        w.ONE_WAY_CALL,
        w.OUTPUT,
        w.END,
        w.SUSPENSION,
        w.ERROR,
    }
)
"""The frames an answer may hold that this stage reads."""


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
        t = f.type
        if t == w.AWAITING_ON:
            return False  # advisory only
        if t not in _READ:
            raise UnsupportedCommand(
                f"the handler used {f.name}, which Perdure does not run for Restate SDKs yet"
            )
        if t in (w.SET_STATE, w.CLEAR_STATE, w.CLEAR_ALL_STATE) and not self._writes_state:
            # A shared handler runs beside the key's exclusive one: it may only read.
            raise ProtocolError(
                f"a {self._start.handler_kind.value or 'service'} handler may not change state "
                "(only exclusive and workflow handlers write it)"
            )
        m = f.message()
        if t == w.SET_STATE:
            self._ops.append(StateOp(StateOpKind.SET, _key(m.key), m.value.content))
        elif t == w.CLEAR_STATE:
            self._ops.append(StateOp(StateOpKind.CLEAR, _key(m.key)))
        elif t == w.CLEAR_ALL_STATE:
            self._ops.append(StateOp(StateOpKind.CLEAR_ALL))
        elif t == w.GET_EAGER_STATE:
            read = m.value.content if m.HasField("value") else None
            self._ops.append(StateOp(StateOpKind.READ, _key(m.key), read))
            self._cid += 1
        elif t == w.GET_EAGER_STATE_KEYS:
            names = [k.decode(errors="replace") for k in m.value.keys]
            self._ops.append(StateOp(StateOpKind.READ_KEYS, "", json.dumps(names).encode()))
            self._cid += 1
        elif t == w.RUN:
            cid = m.result_completion_id
            self._take(1, cid)
            new = self._add(JournalEntry(EntryKind.RUN, m.name), (cid,))
            new.run_completion = cid
            self._runs[cid] = new
        elif t == w.PROPOSE_RUN_COMPLETION:
            cid = m.result_completion_id
            if cid not in self._runs:
                raise ProtocolError(f"a run result for completion {cid}, which no run awaits")
            new = self._runs.pop(cid)
            o = Outcome.read(m)
            failure = Failure(*o.failure) if o.failure else None
            new.entry = replace(
                new.entry, value=o.value if failure is None else None, failure=failure
            )
            new.run_completion = None
        elif t == w.SLEEP:
            cid = m.result_completion_id
            self._take(1, cid)
            duration = max(m.wake_up_time - int(time.time() * 1000), 0)
            entry = JournalEntry(EntryKind.SLEEP, m.name, str(duration).encode(), completed=False)
            self._add(entry, (cid,))
        elif t in (w.GET_PROMISE, w.PEEK_PROMISE, w.COMPLETE_PROMISE):
            self._promise(f, m)
        elif t in (w.CALL, w.ONE_WAY_CALL):
            self._call(f, m)
        elif t == w.OUTPUT:
            self.answer.output = Outcome.read(m)
        elif t == w.END:
            self._end()
            return True
        elif t == w.SUSPENSION:
            if m.waiting_named_signals:
                raise UnsupportedCommand("a wait for a named signal")
            if not m.waiting_completions and not m.waiting_signals:
                raise ProtocolError("the SDK suspended waiting for nothing")
            self._end()
            self.answer.suspended_on = tuple(m.waiting_completions)
            self.answer.waiting_signals = tuple(m.waiting_signals)
            return True
        else:  # ERROR
            self.answer.error = f"{m.code} {m.message}".strip()
            retry = m.HasField("next_retry_delay")
            self.answer.error_retry_ms = m.next_retry_delay if retry else None
            self._end()
            return True
        return False

    def _call(self, f: Frame, m: Any) -> None:
        send = f.type == w.ONE_WAY_CALL
        service, handler, param = m.service_name, m.handler_name, m.parameter
        if m.headers or m.HasField("idempotency_key"):
            raise UnsupportedCommand(
                f"a call to {service}/{handler} with headers or an idempotency key"
            )
        key = _checked(m.key, f"the key of a call to {service}/{handler}")
        notify = m.invocation_id_notification_idx
        self._take(1, notify)
        if not send:
            self._take(1, m.result_completion_id)
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
        if send and m.invoke_time:
            delay_ms = max(m.invoke_time - int(time.time() * 1000), 0)
            try:
                check_delay_ms(delay_ms, f"the delay of a send to {service}/{handler}")
            except LimitExceeded as err:
                raise RefusedCommand(str(err)) from None
        spec = CallSpec(Target(service, handler, target_key), handler_kind, param, callee, delay_ms)
        kind = EntryKind.SEND if send else EntryKind.CALL
        ids = (notify,) if send else (notify, m.result_completion_id)
        self._add(JournalEntry(kind, m.name, call=spec, completed=False), ids)

    def _promise(self, f: Frame, m: Any) -> None:
        if m.name:
            raise UnsupportedCommand(f"a named {f.name} (its name is not journaled)")
        cid = m.result_completion_id
        self._take(1, cid)
        key = _checked(m.key, "a promise name")
        if f.type == w.COMPLETE_PROMISE:
            # The engine journals only whether it took: the command itself goes first.
            self._add(JournalEntry(EntryKind.RUN, PAYLOAD_ENTRY, value=f.body), ())
            o = Outcome.read(m, "completion")
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


def _key(raw: bytes) -> str:
    try:
        return _checked(raw.decode(), "a state key")
    except UnicodeDecodeError:
        # Replacing the bad bytes would make distinct keys one.
        raise RefusedCommand("a state key that is not UTF-8") from None


def _checked(name: str, what: str) -> str:
    try:
        return check_name(name, what)
    except LimitExceeded as err:
        raise RefusedCommand(str(err)) from None
