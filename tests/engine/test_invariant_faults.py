"""Issue 9's faults at the state machine, each with the record sequence that showed it.

Every test names the numbered fault it pins. They run on :class:`MemoryTxn`, no broker.
"""

from __future__ import annotations

import typing
from dataclasses import fields

import pytest

from perdure.engine import codec, keys, state_machine
from perdure.engine.ids import InvocationId
from perdure.engine.model import (
    Caller,
    CallSpec,
    EntryKind,
    Failure,
    HandlerKind,
    JournalEntry,
    Phase,
    Reply,
    StateOp,
    StateOpKind,
    Target,
)
from perdure.engine.records import (
    AckEntry,
    AnnounceLeader,
    Attach,
    AttemptFailed,
    CallResult,
    Cancel,
    Command,
    Complete,
    CompleteAwakeable,
    Deliver,
    Detach,
    Envelope,
    InvocationEnded,
    Invoke,
    ProposeEntry,
    PurgeExpired,
    ScheduleRetry,
    SendResponse,
    StartInvocation,
    Suspend,
    SweepAgain,
)
from perdure.engine.status import get_status
from perdure.engine.storage import MemoryTxn

SVC = Target("svc", "h")
WF = Target("wf", "run", "id-1")


def ids(n: int) -> list[str]:
    return [str(InvocationId.new_unkeyed(bytes([i]) * 16)) for i in range(1, n + 1)]


A, B, C = ids(3)


def ext(c: Command, ts: int = 1000) -> Envelope:
    return Envelope(c, 0, "", ts)


def lead(c: Command, ts: int = 1000, epoch: int = 1) -> Envelope:
    return Envelope(c, epoch, "w", ts)


def fresh() -> MemoryTxn:
    txn = MemoryTxn()
    state_machine.apply(Envelope(AnnounceLeader("w"), 1, "w", 0), txn)
    return txn


def started(txn: MemoryTxn, invocation_id: str, target: Target = SVC, **kw: object) -> None:
    state_machine.apply(ext(Invoke(invocation_id, target, b"in", **kw)), txn)  # type: ignore[arg-type]


def propose(txn: MemoryTxn, inv: str, index: int, entry: JournalEntry, attempt: int = 0) -> list:
    return state_machine.apply(lead(ProposeEntry(inv, attempt, index, entry)), txn)


# --- fencing is a property of the record kind ----------------------------------------------


def test_every_record_kind_is_either_fenced_or_not() -> None:
    kinds = set(typing.get_args(Command))
    assert kinds == state_machine.FENCED | state_machine.UNFENCED
    assert not state_machine.FENCED & state_machine.UNFENCED


def _sample(kind: type) -> Command:
    values: dict[str, object] = {}
    for f in fields(kind):
        if f.name == "invocation_id":
            values[f.name] = A
        elif f.name == "reply":
            values[f.name] = Reply(0, "r")
        elif f.name == "entry":
            values[f.name] = JournalEntry(EntryKind.RUN, "s", b"1")
        elif f.name in ("attempt", "index"):
            values[f.name] = 0
        elif f.name == "retention_ms":
            values[f.name] = 1
        elif f.name == "target":
            values[f.name] = SVC
        elif f.name in ("input",):
            values[f.name] = b""
        elif f.name in ("leader_id", "message", "request_id", "backup_id"):
            values[f.name] = "x"
        elif f.name in ("applied_offset", "first_offset", "keys", "size_bytes"):
            values[f.name] = 5
        elif f.name == "retry_in_ms":
            values[f.name] = 10
        elif f.name == "block":
            values[f.name] = True
        elif f.name == "waiting_on":
            values[f.name] = (0,)
    return kind(**values)  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", sorted(state_machine.FENCED, key=lambda k: k.__name__))
def test_a_fenced_kind_from_another_epoch_changes_nothing(kind: type) -> None:
    txn = fresh()
    started(txn, A)
    state_machine.apply(Envelope(AnnounceLeader("w2"), 2, "w2", 0), txn)
    before = dict(txn.data)
    # Epoch 1 is deposed, epoch 3 never announced: both are fenced, whatever the kind.
    for epoch in (1, 3):
        assert state_machine.apply(Envelope(_sample(kind), epoch, "zombie", 10**12), txn) == []
    assert txn.data == before


# --- 1: a bad argument from user code fails the step, never the partition ------------------


def test_cancel_of_a_malformed_id_fails_the_step_with_400() -> None:
    txn = fresh()
    started(txn, A)
    entry = JournalEntry(EntryKind.CANCEL_INVOCATION, "garbage", completed=False)
    actions = propose(txn, A, 0, entry)
    assert len(actions) == 1 and isinstance(actions[0], AckEntry)
    done = actions[0].entry
    assert done is not None and done.failure is not None and done.failure.code == 400
    assert state_machine.outbox(txn) == [], "nothing undeliverable goes to the outbox"


# --- 3: the handler goes on with the journaled entry, not its own proposal ----------------


def test_a_step_is_acknowledged_with_what_the_journal_holds() -> None:
    txn = fresh()
    started(txn, A)
    first = JournalEntry(EntryKind.RUN, "s", b'"first"')
    assert propose(txn, A, 0, first) == [AckEntry(A, 0, 0, first)]
    # A restarted attempt proposes index 0 again: dropped, and the journal keeps the first.
    assert propose(txn, A, 0, JournalEntry(EntryKind.RUN, "s", b'"second"')) == []
    assert state_machine.journal(txn, A) == (first,)


# --- 4: redelivered cross-partition commands are applied once ------------------------------


def _with_two_pending_calls(txn: MemoryTxn) -> None:
    started(txn, B)
    for index, callee in enumerate((A, C)):
        spec = CallSpec(SVC, HandlerKind.SERVICE, b"", callee)
        entry = JournalEntry(EntryKind.CALL, "svc/h", call=spec, completed=False)
        state_machine.apply(ext(Invoke(callee, SVC, b"")), txn)
        propose(txn, B, index, entry)


def test_a_redelivered_cancel_does_not_cancel_what_the_target_waits_on_next() -> None:
    txn = fresh()
    started(txn, B)
    sleep = JournalEntry(EntryKind.SLEEP, "nap", b"60000", completed=False)
    propose(txn, B, 0, sleep)
    cancel = Cancel(B, caller=Caller(A, 3))
    first = state_machine.apply(ext(cancel), txn)
    assert Deliver(A, CallResult(A, 3, b"true")) in first
    # The handler compensates: it journals a new entry that waits (a call).
    state_machine.apply(lead(ProposeEntry(B, 0, 1, JournalEntry(EntryKind.SLEEP, "c", b"50"))), txn)
    again = state_machine.apply(ext(cancel), txn)
    assert again == [Deliver(A, CallResult(A, 3, b"true"))], "only the first outcome, again"
    entry = state_machine.journal(txn, B)[1]
    assert entry.failure is None and not entry.completed, "the compensation is not cancelled"


def test_a_redelivered_awakeable_completion_answers_its_first_outcome() -> None:
    txn = fresh()
    started(txn, B)
    propose(txn, B, 0, JournalEntry(EntryKind.AWAKEABLE, "awakeable", completed=False))
    complete = CompleteAwakeable(B, 0, b"1", caller=Caller(A, 2))
    assert Deliver(A, CallResult(A, 2, b"true")) in state_machine.apply(ext(complete), txn)
    assert state_machine.apply(ext(complete), txn) == [Deliver(A, CallResult(A, 2, b"true"))]
    # Another resolver still gets its 409.
    other = state_machine.apply(ext(CompleteAwakeable(B, 0, b"2", caller=Caller(C, 0))), txn)
    assert other[-1] == Deliver(
        C, CallResult(C, 0, None, Failure(409, "the awakeable was already completed"))
    )


def test_a_cancel_redelivered_after_its_target_finished_answers_the_same() -> None:
    txn = fresh()
    started(txn, B)
    cancel = Cancel(B, caller=Caller(A, 0))
    state_machine.apply(ext(cancel), txn)
    state_machine.apply(lead(Complete(B, 0, failure=Failure(409, "cancelled"))), txn)
    assert state_machine.apply(ext(cancel), txn) == [Deliver(A, CallResult(A, 0, b"true"))]


def test_a_cancelled_call_stays_in_the_outbox_as_a_cancel_until_answered() -> None:
    txn = fresh()
    _with_two_pending_calls(txn)
    state_machine.apply(ext(Cancel(B)), txn)
    pending = [d.command for _, d in state_machine.outbox(txn)]
    assert pending == [Cancel(A, caller=Caller(B, 0)), Cancel(C, caller=Caller(B, 1))]
    state_machine.apply(ext(CallResult(B, 0, b"true")), txn)
    assert [d.command for _, d in state_machine.outbox(txn)] == [Cancel(C, caller=Caller(B, 1))]


# --- 7: liveness -------------------------------------------------------------------------


def test_a_suspend_that_waits_on_nothing_resumes_at_once() -> None:
    txn = fresh()
    started(txn, A)
    actions = state_machine.apply(lead(Suspend(A, 0, ())), txn)
    assert [type(a) for a in actions] == [StartInvocation]
    status = get_status(txn, A)
    assert status is not None and status.suspended_on == ()


def test_a_new_leader_resumes_a_suspended_invocation_whose_wait_is_over() -> None:
    txn = fresh()
    started(txn, A)
    propose(txn, A, 0, JournalEntry(EntryKind.SLEEP, "nap", b"10", completed=False))
    state_machine.apply(lead(Suspend(A, 0, (0,))), txn)
    assert state_machine.running_invocations(txn) == []
    # The timer fired and its resume was lost with the leader that applied it:
    raw = txn.data[keys.journal_key(A, 0)]
    txn.data[keys.journal_key(A, 0)] = codec.encode_entry(
        JournalEntry(EntryKind.SLEEP, "nap", codec.decode_entry(raw).value)
    )
    assert [s.invocation_id for s in state_machine.running_invocations(txn)] == [A]


# --- 8: bounded growth --------------------------------------------------------------------


def test_waiters_and_input_stay_out_of_the_status_record() -> None:
    txn = fresh()
    started(txn, A, reply=Reply(0, "r0"))
    small = len(txn.data[keys.status_key(A)])
    big_input = b"x" * 100_000
    state_machine.apply(ext(Invoke(B, SVC, big_input, Reply(0, "q"))), txn)
    for i in range(200):
        state_machine.apply(ext(Attach(A, Reply(1, f"r{i}"), True)), txn)
    assert len(txn.data[keys.status_key(A)]) == small
    assert len(txn.data[keys.status_key(B)]) < 200
    start = state_machine.start_action(txn, B)
    assert start is not None and start.input == big_input


def test_a_detached_waiter_gets_no_answer() -> None:
    txn = fresh()
    started(txn, A, reply=Reply(0, "stays"))
    state_machine.apply(ext(Attach(A, Reply(1, "leaves"), True)), txn)
    state_machine.apply(ext(Detach(A, "leaves")), txn)
    actions = state_machine.apply(lead(Complete(A, 0, b"1")), txn)
    answered = [a.reply.request_id for a in actions if isinstance(a, SendResponse)]
    assert answered == ["stays"]


def test_the_retention_sweep_works_in_bounded_batches() -> None:
    txn = fresh()
    many = [str(InvocationId.new_unkeyed(i.to_bytes(16, "big"))) for i in range(1200)]
    for inv in many:
        started(txn, inv)
        state_machine.apply(lead(Complete(inv, 0, b"1")), txn)
    sweep = lead(PurgeExpired(1), ts=10_000)
    assert state_machine.apply(sweep, txn) == [SweepAgain()]
    assert state_machine.apply(sweep, txn) == [SweepAgain()]
    assert state_machine.apply(sweep, txn) == []
    assert all(get_status(txn, inv) is None for inv in many)


# --- 9: nothing outlives its invocation ---------------------------------------------------


def test_an_invocation_that_ends_disarms_its_timers() -> None:
    txn = fresh()
    started(txn, A)
    propose(txn, A, 0, JournalEntry(EntryKind.SLEEP, "timeout", b"86400000", completed=False))
    assert state_machine.timers(txn)
    state_machine.apply(lead(Complete(A, 0, b"1")), txn)
    assert state_machine.timers(txn) == [], "a timer of a completed invocation is never re-armed"


def test_purge_leaves_nothing_of_an_invocation() -> None:
    txn = fresh()
    started(txn, B)
    propose(txn, B, 0, JournalEntry(EntryKind.AWAKEABLE, "awakeable", completed=False))
    state_machine.apply(ext(CompleteAwakeable(B, 0, b"1", caller=Caller(A, 0))), txn)
    state_machine.apply(ext(Attach(B, Reply(0, "r"), True)), txn)
    state_machine.apply(lead(Complete(B, 0, b"1")), txn)
    state_machine.apply(lead(PurgeExpired(1), ts=10_000), txn)
    left = [k for k in txn.data if B.encode() in k]
    assert left == []


def test_promise_waiters_go_with_their_workflow() -> None:
    txn = fresh()
    run_id = str(InvocationId.for_key(b"id-1", b"\x07" * 16))
    started(txn, run_id, WF, handler_kind=HandlerKind.WORKFLOW)
    propose(txn, run_id, 0, JournalEntry(EntryKind.GET_PROMISE, "p", completed=False))
    assert any(k.startswith(keys.PROMISE_WAITER) for k in txn.data)
    state_machine.apply(ext(Cancel(run_id, kill=True)), txn)
    assert not any(k.startswith(keys.PROMISE_WAITER) for k in txn.data)


# --- 11: a cancel reaches an invocation that is backing off -------------------------------


def test_a_cancel_during_back_off_ends_an_attempt_that_fails_again() -> None:
    txn = fresh()
    started(txn, A, reply=Reply(0, "r"))
    actions = state_machine.apply(lead(AttemptFailed(A, 0, "boom", 10_000)), txn)
    assert actions == [ScheduleRetry(A, 1, 10_000)]
    nudge = state_machine.apply(ext(Cancel(A)), txn)
    assert any(isinstance(a, StartInvocation) and a.attempt == 1 for a in nudge), (
        "the next attempt starts now, not after the back-off"
    )
    ended = state_machine.apply(lead(AttemptFailed(A, 1, "boom", 20_000)), txn)
    assert InvocationEnded(A, "cancelled") in ended
    status = get_status(txn, A)
    assert status is not None and status.phase is Phase.COMPLETED
    assert status.failure == state_machine.CANCELLED


def test_a_cancel_during_back_off_reaches_the_next_attempts_first_new_entry() -> None:
    txn = fresh()
    started(txn, A)
    propose(txn, A, 0, JournalEntry(EntryKind.RUN, "charge", b"1"))
    state_machine.apply(lead(AttemptFailed(A, 0, "boom", 10_000)), txn)
    state_machine.apply(ext(Cancel(A)), txn)
    acks = propose(txn, A, 1, JournalEntry(EntryKind.RUN, "ship", b"2"), attempt=1)
    assert len(acks) == 1 and isinstance(acks[0], AckEntry) and acks[0].entry is not None
    assert acks[0].entry.failure == state_machine.CANCELLED


# --- 12/13: state is visible once journaled, reads are journaled ----------------------------


def test_a_read_rides_on_the_next_entry_and_changes_nothing() -> None:
    txn = fresh()
    key = Target("counter", "get", "k")
    started(txn, A, key, handler_kind=HandlerKind.SHARED)
    read = StateOp(StateOpKind.READ, "n", b"7")
    step = JournalEntry(EntryKind.RUN, "s", b"1", state_ops=(read,))
    assert propose(txn, A, 0, step) == [AckEntry(A, 0, 0, step)]
    assert state_machine.journal(txn, A) == (step,)
    assert not any(k.startswith(keys.STATE) for k in txn.data)


def test_a_completion_resumes_a_suspended_invocation_and_wakes_a_task_that_runs_it() -> None:
    txn = fresh()
    started(txn, A)
    propose(txn, A, 0, JournalEntry(EntryKind.AWAKEABLE, "awakeable", completed=False))
    state_machine.apply(lead(Suspend(A, 0, (0,))), txn)
    actions = state_machine.apply(ext(CompleteAwakeable(A, 0, b"1")), txn)
    # A new leader may have started it already: the ack reaches that task, the start is moot.
    assert [type(a) for a in actions] == [StartInvocation, AckEntry]
    # It suspends again on a new entry: the new wait is recorded.
    propose(txn, A, 1, JournalEntry(EntryKind.AWAKEABLE, "awakeable", completed=False))
    state_machine.apply(lead(Suspend(A, 0, (1,))), txn)
    status = get_status(txn, A)
    assert status is not None and status.suspended_on == (1,)


@pytest.mark.parametrize("completed", [True, False])
def test_an_entrys_completion_is_read_from_its_last_byte(completed: bool) -> None:
    spec = CallSpec(SVC, HandlerKind.SERVICE, b"x" * 300, A)
    failure = Failure(500, "f")
    entry = JournalEntry(EntryKind.CALL, "n", b"v", failure, call=spec, completed=completed)
    assert codec.entry_is_completed(codec.encode_entry(entry)) is completed
