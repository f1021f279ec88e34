"""The simulator's judge: it folds the log again from outside the engine and checks invariants.

:class:`Observer` applies every record that ever landed (trimmed or not) with the pure state
machine into stores of its own — what any correct replica must hold — and notes what only a
fold can see: each invocation's ends, timers that fired before their time, rejected records.
:func:`violations` then holds the run against a sequential model of the workload and against
what the world saw (step runs, publishes, answers).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from perdure.engine import codec, keys, state_machine
from perdure.engine.keyed import read_state
from perdure.engine.model import EntryKind, Phase, Reply
from perdure.engine.records import (
    Attach,
    AttemptFailed,
    Complete,
    Envelope,
    InvocationEnded,
    Invoked,
    ProposeEntry,
    RecordRejected,
    Response,
    SendResponse,
    Suspend,
    TimerFired,
)
from perdure.engine.status import get_entry, get_status
from perdure.engine.storage import MemoryTxn
from perdure.partitions.runtime.ports import StoredRecord
from perdure.partitions.simulation.workload import Ledger

LEADERS_RECORDS = frozenset({ProposeEntry, TimerFired, Suspend, AttemptFailed, Complete})
"""The records only a leader writes: one of an earlier epoch must change nothing (listed here,
not taken from the engine's FENCED set, so that a fault there cannot blind the check)."""


@dataclass
class Observer:
    """An outside fold of every partition's history."""

    partitions: int
    stores: list[MemoryTxn] = field(default_factory=list)
    cursor: list[int] = field(default_factory=list)
    invoked: set[str] = field(default_factory=set)
    ends: Counter[str] = field(default_factory=Counter)
    early_timers: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    deposed: list[str] = field(default_factory=list)
    """Records of a deposed leader that changed something (DESIGN.md invariant 3)."""
    rejected_ids: set[str] = field(default_factory=set)
    """Invocations whose record was rejected (engine/rejection.py)."""

    def __post_init__(self) -> None:
        self.stores = [MemoryTxn() for _ in range(self.partitions)]
        self.cursor = [0] * self.partitions

    def catch_up(self, history: list[list[StoredRecord]]) -> None:
        for partition, records in enumerate(history):
            txn = self.stores[partition]
            for record in records[self.cursor[partition] :]:
                env = codec.decode_envelope(record.value(), record.timestamp()[1])
                self._before(env, txn)
                stale = type(env.command) in LEADERS_RECORDS and (
                    env.epoch != state_machine.leader(txn)[0]
                )
                actions = state_machine.apply(env, txn, record.offset())
                if stale and actions:
                    self.deposed.append(
                        f"partition {partition} offset {record.offset()}: "
                        f"{type(env.command).__name__} of epoch {env.epoch} was applied"
                    )
                for action in actions:
                    self._note(partition, action)
                    if isinstance(action, RecordRejected):
                        self.rejected_ids.add(getattr(env.command, "invocation_id", ""))
            self.cursor[partition] = len(records)

    def _before(self, env: Envelope, txn: MemoryTxn) -> None:
        c = env.command
        if not isinstance(c, TimerFired) or env.epoch != state_machine.leader(txn)[0]:
            return
        due: int | None = None
        if c.index == keys.SCHEDULED_START:
            s = get_status(txn, c.invocation_id)
            if s is not None and s.phase is Phase.SCHEDULED:
                due = s.execute_at_ms
        else:
            entry = get_entry(txn, c.invocation_id, c.index)
            if entry is not None and entry.kind is EntryKind.SLEEP and not entry.completed:
                due = int(entry.value or b"0")
        if due is not None and env.timestamp_ms < due:
            self.early_timers.append(
                f"timer {c.invocation_id}/{c.index} fired at {env.timestamp_ms}, due {due}"
            )

    def _note(self, partition: int, action: object) -> None:
        if isinstance(action, Invoked):
            self.invoked.add(action.invocation_id)
        elif isinstance(action, InvocationEnded):
            self.ends[action.invocation_id] += 1
        elif isinstance(action, RecordRejected):
            self.rejected.append(f"partition {partition} offset {action.offset}: {action.reason}")

    def open_invocations(self) -> list[str]:
        """Invocations recorded and not ended."""
        return sorted(i for i in self.invoked if not self.ends[i])

    def outcome(self, partition: int, invocation_id: str) -> Response | None:
        """The invocation's outcome as an attach would be answered now (None: no answer)."""
        reply = Reply(0, f"probe-{invocation_id}")
        env = Envelope(Attach(invocation_id, reply, False), 0, "observer", 0)
        for action in state_machine.apply(env, self.stores[partition], -1):
            if isinstance(action, SendResponse):
                return action.response
        return None

    def state(self, partition: int, service: str, key: str) -> dict[str, bytes]:
        return dict(read_state(self.stores[partition], service, key))


@dataclass
class Expectation:
    """What the sequential model says of one accepted invocation.

    Args:
        invocation_id: its id.
        partition: where it lives.
        what: how the trace names it.
        check: the model: None if the response is as predicted, else why not.
    """

    invocation_id: str
    partition: int
    what: str
    check: Callable[[Response], str | None]
    rejected: bool = False
    """The model: its record is rejected (a 400 to its caller), nothing of it is kept."""


def violations(
    observer: Observer,
    expectations: Iterable[Expectation],
    ledger: Ledger,
    published: Counter[str],
    must_publish: set[str],
    counters: dict[str, set[tuple[int, str]]],
    key_partition: Callable[[str], int],
    blocked: list[str],
) -> list[str]:
    """Every broken invariant of the run, in words (empty: none)."""
    out: list[str] = []
    # Every accepted invocation ended exactly once, as the model predicts.
    for inv, n in sorted(observer.ends.items()):
        if n > 1:
            out.append(f"invocation {inv} ended {n} times")
    for e in expectations:
        if e.rejected:
            if e.invocation_id not in observer.rejected_ids or e.invocation_id in observer.invoked:
                out.append(f"{e.what} {e.invocation_id} was not rejected")
            continue
        response = observer.outcome(e.partition, e.invocation_id)
        if response is None or response.status.value in ("not_ready", "not_found"):
            status = response.status.value if response else "no answer"
            out.append(f"{e.what} {e.invocation_id} never finished ({status})")
            continue
        why = e.check(response)
        if why is not None:
            out.append(f"{e.what} {e.invocation_id}: {why}")
    # No step ran after a handler had its result.
    for run in ledger.executions:
        acked = ledger.first_ack.get((run.invocation_id, run.step))
        if acked is not None and run.at_ms > acked:
            out.append(
                f"step {run.step} of {run.invocation_id} ran at {run.at_ms} on {run.worker},"
                f" after its result was acknowledged at {acked}"
            )
    # Object state equals the model: each key's answers are 1..m, and it holds m.
    for key, invs in sorted(counters.items()):
        got = []
        for partition, inv in sorted(invs):
            r = observer.outcome(partition, inv)
            if r is not None and r.result is not None:
                got.append(int(r.result))
        state = observer.state(key_partition(key), "counter", key).get("v")
        held = int(state) if state is not None else 0
        if sorted(got) != list(range(1, len(got) + 1)) or held != len(got):
            out.append(f"counter {key}: answers {sorted(got)}, state {held}")
    out.extend(f"a deposed leader's record took effect: {d}" for d in observer.deposed)
    for early in observer.early_timers:
        out.append(f"a timer fired early: {early}")
    # Every publish is in its topic exactly once.
    for key, n in sorted(published.items()):
        if n > 1:
            out.append(f"record of {key} published {n} times")
    for key in sorted(must_publish - set(published)):
        out.append(f"record of {key} never published")
    # No partition stopped on an input.
    out.extend(blocked)
    # No silent hang: everything recorded ended.
    for inv in observer.open_invocations():
        out.append(f"invocation {inv} never ended")
    return out
