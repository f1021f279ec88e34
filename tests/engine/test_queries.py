"""Operators' queries of a partition, over the reference store: statuses, filters, paging."""

from __future__ import annotations

import json

import pytest

from perdure.engine import codec, keys, queries, state_machine
from perdure.engine.model import EntryKind, Failure, JournalEntry, Phase, Reply, Target
from perdure.engine.queries import InvocationFilter, QueryError
from perdure.engine.records import (
    AnnounceLeader,
    AnswerQuery,
    AttemptFailed,
    Cancel,
    Complete,
    Envelope,
    Invoke,
    ProposeEntry,
    Query,
    Suspend,
)
from perdure.engine.storage import MemoryTxn

R = Reply(0, "r")
NOW = 10_000


def ext(command: object, ts: int = 1000) -> Envelope:
    return Envelope(command, 0, "", ts)  # type: ignore[arg-type]


def by_leader(command: object, ts: int = 1000) -> Envelope:
    return Envelope(command, 1, "w", ts)  # type: ignore[arg-type]


def partition() -> MemoryTxn:
    """A partition with one invocation in each status (ids say which)."""
    txn = MemoryTxn()
    apply = state_machine.apply
    apply(Envelope(AnnounceLeader("w"), 1, "w", 0), txn)

    def invoke(i: str, target: Target, ts: int = 1000, kind: str = "") -> None:
        from perdure.engine.model import HandlerKind

        apply(ext(Invoke(i, target, b"in", handler_kind=HandlerKind(kind)), ts), txn)

    svc, obj = Target("svc", "h"), Target("obj", "add", "k")
    for n, ts in (("done-1", 1000), ("done-2", 2000), ("done-3", 3000)):
        invoke(n, svc, ts)
        apply(by_leader(Complete(n, 0, b'"ok"'), ts + 1), txn)
    invoke("failed", svc, 1500)
    apply(by_leader(Complete("failed", 0, None, Failure(500, "boom")), 1600), txn)
    invoke("running", svc, 4000)
    apply(by_leader(ProposeEntry("running", 0, 0, JournalEntry(EntryKind.RUN, "a", b"1"))), txn)
    invoke("sleeping", svc, 4100)
    sleep = JournalEntry(EntryKind.SLEEP, "nap", b"99999999", completed=False)
    apply(by_leader(ProposeEntry("sleeping", 0, 0, sleep)), txn)
    apply(by_leader(Suspend("sleeping", 0, (0,))), txn)
    invoke("retrying", svc, 4200)
    apply(by_leader(AttemptFailed("retrying", 0, "flaky", 6000), 5000), txn)  # due at 11_000
    invoke("holder", obj, 4300, "exclusive")
    invoke("queued", obj, 4400, "exclusive")
    invoke("killed", svc, 4500)
    apply(ext(Cancel("killed", kill=True), 4600), txn)
    return txn


def all_rows(txn: MemoryTxn, flt: InvocationFilter, limit: int = 2, budget: int = 3) -> list[str]:
    """Pages through the partition, small pages and a small budget: every row once."""
    out: list[str] = []
    cursor = None
    for _ in range(100):
        page = queries.list_invocations(txn, flt, NOW, cursor, limit, budget)
        out += [r["id"] for r in page["rows"]]
        assert len(page["rows"]) <= limit and page["scanned"] <= budget
        if page["next"] is None:
            return out
        cursor = bytes.fromhex(page["next"])
    raise AssertionError("never ended")


STATUS_OF = {
    "done-1": "completed",
    "done-2": "completed",
    "done-3": "completed",
    "failed": "failed",
    "running": "running",
    "sleeping": "suspended",
    "retrying": "backing-off",
    "holder": "running",
    "queued": "pending",
    "killed": "killed",
}


def test_each_invocation_has_the_status_an_operator_expects() -> None:
    txn = partition()
    rows = queries.list_invocations(txn, InvocationFilter(), NOW, None, 100)["rows"]
    assert {r["id"]: r["status"] for r in rows} == STATUS_OF
    retrying = next(r for r in rows if r["id"] == "retrying")
    assert retrying["next_attempt_ms"] == 11_000
    assert retrying["last_error"] == "flaky" and retrying["attempts"] == 2
    # Once the back-off is over it is running (its next attempt is due).
    later = queries.list_invocations(txn, InvocationFilter(), 20_000, None, 100)["rows"]
    assert next(r for r in later if r["id"] == "retrying")["status"] == "running"


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (InvocationFilter(frozenset({"completed"})), ["done-3", "done-2", "done-1"]),
        (
            InvocationFilter(frozenset({"completed", "failed"})),
            ["done-3", "done-2", "failed", "done-1"],
        ),
        (InvocationFilter(frozenset({"suspended", "backing-off"})), ["retrying", "sleeping"]),
        (InvocationFilter(frozenset({"pending"})), ["queued"]),
        (InvocationFilter(service="obj"), ["holder", "queued"]),
        (InvocationFilter(key="k", handler="add"), ["holder", "queued"]),
        (InvocationFilter(created_after_ms=4100, created_before_ms=4400), ["holder", "retrying"]),
        (InvocationFilter(frozenset({"killed", "cancelled"})), ["killed"]),
        (InvocationFilter(frozenset({"scheduled"})), []),
    ],
)
def test_filters_page_through_their_index(flt: InvocationFilter, expected: list[str]) -> None:
    got = all_rows(partition(), flt)
    if flt.statuses and flt.statuses <= queries.ENDED:
        assert got == expected, "ended invocations come newest completion first"
    else:
        assert sorted(got) == sorted(expected)
    assert len(got) == len(set(got))


@pytest.mark.parametrize("flt", [InvocationFilter(frozenset({st})) for st in queries.ENDED])
def test_expiry_entries_written_before_they_said_the_outcome_are_read_from_the_status(
    flt: InvocationFilter,
) -> None:
    txn = partition()
    expiry = [k for k, _ in txn.scan(keys.EXPIRY)]
    assert expiry and all(txn.get(k) for k in expiry), "an expiry entry says how it ended"
    expected = all_rows(txn, flt)
    for k in expiry:
        txn.put(k, b"")  # as an older store holds it
    assert all_rows(txn, flt) == expected
    assert sorted(expected) == sorted(i for i, st in STATUS_OF.items() if st in flt.statuses)


def test_a_page_stops_at_its_budget_and_goes_on_from_its_cursor() -> None:
    txn = partition()
    page = queries.list_invocations(txn, InvocationFilter(frozenset({"pending"})), NOW, None, 5, 2)
    assert page["rows"] == [] and page["scanned"] == 2 and page["next"] is not None
    with pytest.raises(QueryError, match="another filter"):
        queries.list_invocations(
            txn, InvocationFilter(frozenset({"completed"})), NOW, bytes.fromhex(page["next"]), 5
        )


def test_describe_shows_the_journal_and_results_on_request() -> None:
    txn = partition()
    d = queries.describe(txn, "sleeping", NOW, results=False)
    assert d["status"] == "suspended" and d["suspended_on"] == [0]
    assert d["journal"] == [
        {
            "index": 0,
            "kind": "sleep",
            "name": "nap",
            "status": "pending",
            "wake_at_ms": 100_000_999,
            "journaled_ms": 1000,
        }
    ]
    d = queries.describe(txn, "done-2", NOW, results=True)
    assert d["result"] == {"truncated": False, "text": '"ok"'} and d["input_bytes"] == 2
    assert queries.describe(txn, "nope", NOW, results=False) == {"not_found": "nope"}


def test_describe_times_each_step_and_lists_the_failed_attempts() -> None:
    """The timeline: when each entry was journaled and completed, and each failed attempt."""
    from perdure.engine import keys
    from perdure.engine.records import Purge, TimerFired

    txn = partition()
    apply = state_machine.apply
    apply(ext(Invoke("timed", Target("svc", "h"), b""), 100), txn)
    apply(by_leader(AttemptFailed("timed", 0, "Traceback ...\nValueError: no", 10), 150), txn)
    apply(by_leader(ProposeEntry("timed", 1, 0, JournalEntry(EntryKind.RUN, "a", b"1")), 200), txn)
    sleep = JournalEntry(EntryKind.SLEEP, "nap", b"50", completed=False)
    apply(by_leader(ProposeEntry("timed", 1, 1, sleep), 300), txn)
    apply(by_leader(TimerFired("timed", 1), 360), txn)
    d = queries.describe(txn, "timed", NOW, results=False)
    assert d["failed_attempts"] == [
        {"attempt": 1, "at_ms": 150, "error": "Traceback ...\nValueError: no"}
    ]
    assert [(e["journaled_ms"], e["completed_ms"]) for e in d["journal"]] == [
        (200, 200),
        (300, 360),
    ]
    assert d["attempts"] == 2
    # A purge forgets the timeline with the rest.
    apply(by_leader(Complete("timed", 1, b"1"), 400), txn)
    apply(ext(Purge("timed", R), 500), txn)
    assert list(txn.scan(keys.timeline_prefix("timed"))) == []


def test_object_state_has_a_version_that_moves_with_any_value() -> None:
    txn = partition()
    apply = state_machine.apply
    from perdure.engine.model import StateOp, StateOpKind

    op = StateOp(StateOpKind.SET, "count", b"1")
    apply(by_leader(Complete("holder", 0, b"1", None, (op,))), txn)
    first = queries.object_state(txn, "obj", "k")
    assert first["state"] == {"count": {"truncated": False, "text": "1"}}
    assert first["locked_by"] == "queued"  # the next in the inbox holds the key now
    op = StateOp(StateOpKind.SET, "count", b"2")
    apply(by_leader(Complete("queued", 0, b"2", None, (op,))), txn)
    second = queries.object_state(txn, "obj", "k")
    assert second["version"] != first["version"] and second["locked_by"] is None


def test_bad_requests_are_answered_with_an_error_not_raised() -> None:
    txn = partition()
    for request in (
        "not json",
        json.dumps({"v": 99, "kind": "list"}),
        json.dumps({"v": 1, "kind": "drop tables"}),
        json.dumps({"v": 1, "kind": "list", "filter": {"statuses": ["asleep"]}}),
        json.dumps({"v": 1, "kind": "list", "cursor": "zz"}),
        json.dumps({"v": 1, "kind": "describe"}),
    ):
        assert "error" in queries.answer(txn, request, NOW), request
    ok = queries.answer(txn, queries.describe_request("done-1"), NOW)
    assert ok["status"] == "completed"


def test_a_query_goes_through_the_log_and_changes_nothing() -> None:
    txn = partition()
    before = dict(txn.data)
    q = Query(R, queries.state_request("obj", "k"))
    assert state_machine.apply(ext(q), txn) == [AnswerQuery(q)]
    assert txn.data == before
    env = ext(q)
    assert codec.decode_envelope(codec.encode_envelope(env), env.timestamp_ms) == env


def test_phase_names_cover_every_phase() -> None:
    # A new phase must get an operator status (status_of falls through to running otherwise).
    assert {p.value for p in Phase} == {"scheduled", "inboxed", "running", "completed"}


def test_a_state_edit_applies_at_its_version_only_and_never_under_a_holder() -> None:
    from perdure.engine.model import StateOp, StateOpKind
    from perdure.engine.records import ResponseStatus, SendResponse, SetState

    txn = partition()
    apply = state_machine.apply
    held = queries.object_state(txn, "obj", "k")
    edit = SetState("obj", "k", held["version"], (("count", b"7"),), R)
    [refused] = apply(ext(edit), txn)
    assert isinstance(refused, SendResponse) and refused.response.failure is not None
    assert "is held by holder" in refused.response.failure.message
    for done in ("holder", "queued"):  # the key is idle once both completed
        op = StateOp(StateOpKind.SET, "count", b"1")
        apply(by_leader(Complete(done, 0, b"1", None, (op,))), txn)
    idle = queries.object_state(txn, "obj", "k")
    stale = SetState("obj", "k", held["version"], (("count", b"7"),), R)
    [answer] = apply(ext(stale), txn)
    assert answer.response.failure is not None and answer.response.failure.code == 409  # type: ignore[union-attr]
    assert "not " + held["version"] in answer.response.failure.message  # type: ignore[union-attr]
    fresh = SetState("obj", "k", idle["version"], (("count", b"7"), ("other", b"[]")), R)
    [ok] = apply(ext(fresh), txn)
    assert ok.response.status is ResponseStatus.ACCEPTED  # type: ignore[union-attr]
    after = queries.object_state(txn, "obj", "k")
    assert ok.response.result == after["version"].encode()  # type: ignore[union-attr]
    assert after["state"] == {
        "count": {"truncated": False, "text": "7"},
        "other": {"truncated": False, "text": "[]"},
    }
    env = ext(fresh)
    assert codec.decode_envelope(codec.encode_envelope(env), env.timestamp_ms) == env


def test_purge_forgets_a_completed_invocation_and_refuses_a_running_one() -> None:
    from perdure.engine.records import Attach, Purge, ResponseStatus

    txn = partition()
    apply = state_machine.apply
    [ok] = apply(ext(Purge("done-2", R)), txn)
    assert ok.response.status is ResponseStatus.ACCEPTED  # type: ignore[union-attr]
    [gone] = apply(ext(Attach("done-2", R, False)), txn)
    assert gone.response.status is ResponseStatus.NOT_FOUND  # type: ignore[union-attr]
    ended = all_rows(txn, InvocationFilter(frozenset({"completed"})))
    assert ended == ["done-3", "done-1"], "its completion index entry is gone too"
    [running] = apply(ext(Purge("running", R)), txn)
    assert running.response.failure.code == 409  # type: ignore[union-attr]
    [unknown] = apply(ext(Purge("nope", R)), txn)
    assert unknown.response.failure.code == 404  # type: ignore[union-attr]


def test_retry_now_starts_a_backing_off_invocation_only() -> None:
    from perdure.engine.records import ResponseStatus, RetryNow, StartInvocation

    txn = partition()
    apply = state_machine.apply
    start, ok = apply(ext(RetryNow("retrying", R), 6000), txn)
    assert isinstance(start, StartInvocation) and start.attempt == 1
    assert ok.response.status is ResponseStatus.ACCEPTED  # type: ignore[union-attr]
    rows = queries.list_invocations(txn, InvocationFilter(), 6000, None, 100)["rows"]
    assert next(r for r in rows if r["id"] == "retrying")["status"] == "running"
    for busy in ("retrying", "running", "sleeping", "done-1"):
        [refused] = apply(ext(RetryNow(busy, R), 6001), txn)
        assert refused.response.failure.code == 409, busy  # type: ignore[union-attr]
