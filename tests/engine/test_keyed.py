"""Keyed services in the state machine: the per-key inbox, state at completion, calls, promises."""

from __future__ import annotations

from perdure.engine import keyed, state_machine
from perdure.engine.model import (
    Caller,
    CallSpec,
    EntryKind,
    Failure,
    HandlerKind,
    JournalEntry,
    Phase,
    StateOp,
    StateOpKind,
    Target,
)
from perdure.engine.records import (
    AckEntry,
    AnnounceLeader,
    CallResult,
    Command,
    Complete,
    Deliver,
    Envelope,
    InvocationEnded,
    Invoke,
    Invoked,
    ProposeEntry,
    StartInvocation,
)
from perdure.engine.storage import MemoryTxn

ADD = Target("counter", "add", "k")
EX = HandlerKind.EXCLUSIVE


def ext(c: Command) -> Envelope:
    return Envelope(c, 0, "", 1000)


def lead(c: Command) -> Envelope:
    return Envelope(c, 1, "w", 1000)


def fresh() -> MemoryTxn:
    txn = MemoryTxn()
    state_machine.apply(Envelope(AnnounceLeader("w"), 1, "w", 0), txn)
    return txn


def set_op(name: str, value: bytes) -> StateOp:
    return StateOp(StateOpKind.SET, name, value)


def test_exclusive_invocations_of_a_key_queue_in_arrival_order() -> None:
    txn = fresh()
    first = state_machine.apply(ext(Invoke("a", ADD, b"1", handler_kind=EX)), txn)
    assert first[0] == Invoked("a", ADD, "running")
    assert isinstance(first[1], StartInvocation)
    queued = state_machine.apply(ext(Invoke("b", ADD, b"2", handler_kind=EX)), txn)
    assert queued == [Invoked("b", ADD, "pending")], "it waits behind a"
    assert state_machine.apply(ext(Invoke("c", ADD, b"3", handler_kind=EX)), txn) == [
        Invoked("c", ADD, "pending")
    ]
    shared = state_machine.apply(
        ext(Invoke("s", Target("counter", "get", "k"), b"", handler_kind=HandlerKind.SHARED)), txn
    )
    assert isinstance(shared[1], StartInvocation), "shared handlers do not queue"
    other_key = state_machine.apply(
        ext(Invoke("o", Target("counter", "add", "other"), b"", handler_kind=EX)), txn
    )
    assert isinstance(other_key[1], StartInvocation), "other keys do not queue"
    status_b = state_machine.get_status(txn, "b")
    assert status_b is not None
    assert status_b.phase is Phase.INBOXED

    # a completes with a state change: b starts next and sees it.
    actions = state_machine.apply(lead(Complete("a", 0, b"1", state_ops=(set_op("v", b"1"),))), txn)
    assert actions[0] == InvocationEnded("a")
    started = actions[1]
    assert isinstance(started, StartInvocation)
    assert (started.invocation_id, started.state) == ("b", (("v", b"1"),))
    actions = state_machine.apply(lead(Complete("b", 0, b"2")), txn)
    assert isinstance(actions[1], StartInvocation)
    assert actions[1].invocation_id == "c"
    state_machine.apply(lead(Complete("c", 0, b"3")), txn)
    assert keyed.read_state(txn, "counter", "k") == (("v", b"1"),)


def test_state_changes_become_visible_once_journaled() -> None:
    txn = fresh()
    state_machine.apply(ext(Invoke("a", ADD, b"", handler_kind=EX)), txn)
    entry = JournalEntry(EntryKind.RUN, "s", b"1", state_ops=(set_op("x", b"1"),))
    # A proposal that loses (out of turn) changes nothing.
    state_machine.apply(lead(ProposeEntry("a", 0, 5, entry)), txn)
    assert keyed.read_state(txn, "counter", "k") == ()
    state_machine.apply(lead(ProposeEntry("a", 0, 0, entry)), txn)
    assert keyed.read_state(txn, "counter", "k") == (("x", b"1"),), "durable, so visible"
    restarted = state_machine.start_action(txn, "a")
    assert restarted is not None
    assert restarted.state == (("x", b"1"),), "a replay reads its earlier reads from the journal"
    state_machine.apply(lead(Complete("a", 0, b"", state_ops=(set_op("y", b"2"),))), txn)
    assert keyed.read_state(txn, "counter", "k") == (("x", b"1"), ("y", b"2"))
    state_machine.apply(ext(Invoke("b", ADD, b"", handler_kind=EX)), txn)
    clear_all = StateOp(StateOpKind.CLEAR_ALL)
    state_machine.apply(lead(Complete("b", 0, b"", state_ops=(clear_all, set_op("z", b"3")))), txn)
    assert keyed.read_state(txn, "counter", "k") == (("z", b"3"),)


def test_a_call_is_delivered_kept_in_the_outbox_and_completed_once() -> None:
    txn = fresh()
    state_machine.apply(ext(Invoke("caller", Target("s", "h"), b"")), txn)
    spec = CallSpec(Target("pay", "charge"), HandlerKind.SERVICE, b"{}", "callee")
    call = JournalEntry(EntryKind.CALL, "pay/charge", call=spec, completed=False)
    actions = state_machine.apply(lead(ProposeEntry("caller", 0, 0, call)), txn)
    assert actions == [
        Deliver(
            "callee",
            Invoke("callee", Target("pay", "charge"), b"{}", caller=Caller("caller", 0)),
        )
    ]
    assert [d.route_id for _, d in state_machine.outbox(txn)] == ["callee"]
    done = state_machine.apply(ext(CallResult("caller", 0, b"42")), txn)
    assert len(done) == 1
    assert isinstance(done[0], AckEntry)
    assert done[0].entry is not None
    assert done[0].entry.value == b"42"
    assert state_machine.outbox(txn) == []
    assert state_machine.apply(ext(CallResult("caller", 0, b"43")), txn) == [], "deduplicated"
    assert state_machine.journal(txn, "caller")[0].value == b"42"


def test_the_callee_answers_its_caller_and_absorbs_redeliveries() -> None:
    txn = fresh()
    invoke = Invoke("callee", Target("pay", "charge"), b"", caller=Caller("caller", 3))
    assert isinstance(state_machine.apply(ext(invoke), txn)[1], StartInvocation)
    assert state_machine.apply(ext(invoke), txn) == [], "a redelivery while it runs"
    actions = state_machine.apply(lead(Complete("callee", 0, None, Failure(402, "no"))), txn)
    assert Deliver("caller", CallResult("caller", 3, None, Failure(402, "no"))) in actions
    again = state_machine.apply(ext(invoke), txn)
    assert again == [Deliver("caller", CallResult("caller", 3, None, Failure(402, "no")))]


def test_promises_complete_once_and_wake_their_waiters() -> None:
    txn = fresh()
    wf = Target("signup", "run", "bob")
    state_machine.apply(ext(Invoke("main", wf, b"", handler_kind=HandlerKind.WORKFLOW)), txn)
    shared = Target("signup", "verify", "bob")
    state_machine.apply(ext(Invoke("v1", shared, b"", handler_kind=HandlerKind.SHARED)), txn)
    state_machine.apply(ext(Invoke("v2", shared, b"", handler_kind=HandlerKind.SHARED)), txn)
    wait = JournalEntry(EntryKind.GET_PROMISE, "p", completed=False)
    assert state_machine.apply(lead(ProposeEntry("main", 0, 0, wait)), txn) == []
    peek = state_machine.apply(
        lead(ProposeEntry("v1", 0, 0, JournalEntry(EntryKind.PEEK_PROMISE, "p"))), txn
    )
    assert isinstance(peek[0], AckEntry)
    assert peek[0].entry is not None
    assert (peek[0].entry.value, peek[0].entry.failure) == (None, None)
    resolve = JournalEntry(EntryKind.COMPLETE_PROMISE, "p", b'"yes"')
    actions = state_machine.apply(lead(ProposeEntry("v1", 0, 1, resolve)), txn)
    woken = [a for a in actions if isinstance(a, AckEntry) and a.invocation_id == "main"]
    assert len(woken) == 1
    assert woken[0].entry is not None
    assert woken[0].entry.value == b'"yes"'
    twice = state_machine.apply(lead(ProposeEntry("v2", 0, 0, resolve)), txn)
    assert isinstance(twice[0], AckEntry)
    assert twice[0].entry is not None
    assert twice[0].entry.failure is not None
    assert twice[0].entry.failure.code == 409
