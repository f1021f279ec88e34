"""The state machine, table-driven: records in, actions and state out. No broker, no store."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from perdure.engine import codec, keys, state_machine
from perdure.engine.errors import CodecError, InvalidId
from perdure.engine.ids import InvocationId, idempotent_uid, murmur2, partition_for_key
from perdure.engine.model import EntryKind, Failure, JournalEntry, Phase, Reply, Target
from perdure.engine.records import (
    AckEntry,
    Action,
    AnnounceLeader,
    Attach,
    AttemptFailed,
    Command,
    Complete,
    Envelope,
    InvocationEnded,
    Invoke,
    Invoked,
    LeadershipChanged,
    ProposeEntry,
    PurgeExpired,
    Response,
    ResponseStatus,
    ScheduleRetry,
    SendResponse,
    StartInvocation,
)
from perdure.engine.storage import MemoryTxn

T = Target("svc", "h")
R1, R2 = Reply(0, "r1"), Reply(1, "r2")
STEP = JournalEntry(EntryKind.RUN, "s", value=b"1")


def leader(epoch: int, who: str = "w") -> Envelope:
    return Envelope(AnnounceLeader(who), epoch, who, 0)


def ext(c: Command, ts: int = 1000) -> Envelope:
    return Envelope(c, 0, "", ts)


def by(epoch: int, c: Command, ts: int = 1000) -> Envelope:
    return Envelope(c, epoch, "w", ts)


def answer(
    reply: Reply,
    status: ResponseStatus,
    result: bytes | None = None,
    failure: Failure | None = None,
    inv: str = "i",
) -> SendResponse:
    return SendResponse(reply, Response(reply.request_id, inv, status, result, failure))


START = StartInvocation("i", T, b"in", (), 0)
INVOKED = Invoked("i", T, "running")


@dataclass
class Case:
    name: str
    history: list[Envelope]
    record: Envelope
    actions: list[Action]
    phase: Phase | None = None
    journal: int | None = None
    extra: dict[str, object] = field(default_factory=dict)


CASES = [
    Case(
        "call starts and waits",
        [leader(1)],
        ext(Invoke("i", T, b"in", R1)),
        [INVOKED, START],
        Phase.RUNNING,
        0,
    ),
    Case(
        "send with reply is accepted",
        [leader(1)],
        ext(Invoke("i", T, b"in", R1, "k", send=True)),
        [INVOKED, START, answer(R1, ResponseStatus.ACCEPTED)],
        Phase.RUNNING,
    ),
    Case(
        "plain send answers nobody",
        [leader(1)],
        ext(Invoke("i", T, b"in", None, send=True)),
        [INVOKED, START],
    ),
    Case(
        "second call while running only waits",
        [leader(1), ext(Invoke("i", T, b"in", R1))],
        ext(Invoke("i", T, b"in", R2)),
        [],
        Phase.RUNNING,
    ),
    Case(
        "second send is previously accepted",
        [leader(1), ext(Invoke("i", T, b"in", R1, "k", True))],
        ext(Invoke("i", T, b"in", R2, "k", True)),
        [answer(R2, ResponseStatus.PREVIOUSLY_ACCEPTED)],
    ),
    Case(
        "call after completion gets the stored result",
        [leader(1), ext(Invoke("i", T, b"in", R1)), by(1, Complete("i", 0, b"42"))],
        ext(Invoke("i", T, b"in", R2)),
        [answer(R2, ResponseStatus.OK, b"42")],
        Phase.COMPLETED,
    ),
    Case("attach unknown", [], ext(Attach("i", R1, True)), [answer(R1, ResponseStatus.NOT_FOUND)]),
    Case(
        "peek running",
        [leader(1), ext(Invoke("i", T, b"in"))],
        ext(Attach("i", R1, False)),
        [answer(R1, ResponseStatus.NOT_READY)],
    ),
    Case(
        "attach running waits",
        [leader(1), ext(Invoke("i", T, b"in"))],
        ext(Attach("i", R1, True)),
        [],
    ),
    Case(
        "attach failed",
        [leader(1), ext(Invoke("i", T, b"in")), by(1, Complete("i", 0, None, Failure(409, "x")))],
        ext(Attach("i", R1, False)),
        [answer(R1, ResponseStatus.FAILED, failure=Failure(409, "x"))],
    ),
    Case("higher epoch takes over", [leader(1)], leader(2, "v"), [LeadershipChanged("v", 2)]),
    Case("equal epoch is ignored", [leader(2)], leader(2, "v"), []),
    Case("lower epoch is ignored", [leader(2)], leader(1, "v"), []),
    Case(
        "proposal of the leader is acked",
        [leader(1), ext(Invoke("i", T, b"in"))],
        by(1, ProposeEntry("i", 0, 0, STEP)),
        [AckEntry("i", 0, 0, STEP)],
        Phase.RUNNING,
        1,
    ),
    Case(
        "proposal of a deposed leader is fenced",
        [leader(1), ext(Invoke("i", T, b"in")), leader(2)],
        by(1, ProposeEntry("i", 0, 0, STEP)),
        [],
        Phase.RUNNING,
        0,
    ),
    Case(
        "proposal of an old attempt is ignored",
        [leader(1), ext(Invoke("i", T, b"in")), by(1, AttemptFailed("i", 0, "boom", 50))],
        by(1, ProposeEntry("i", 0, 0, STEP)),
        [],
        Phase.RUNNING,
        0,
    ),
    Case(
        "duplicate proposal is ignored",
        [leader(1), ext(Invoke("i", T, b"in")), by(1, ProposeEntry("i", 0, 0, STEP))],
        by(1, ProposeEntry("i", 0, 0, STEP)),
        [],
        Phase.RUNNING,
        1,
    ),
    Case(
        "proposal out of turn is ignored",
        [leader(1), ext(Invoke("i", T, b"in"))],
        by(1, ProposeEntry("i", 0, 1, STEP)),
        [],
        Phase.RUNNING,
        0,
    ),
    Case(
        "completion answers every waiter once",
        [
            leader(1),
            ext(Invoke("i", T, b"in", R1)),
            ext(Attach("i", R2, True)),
            ext(Attach("i", R2, True)),
        ],
        by(1, Complete("i", 0, b"7")),
        [
            answer(R1, ResponseStatus.OK, b"7"),
            answer(R2, ResponseStatus.OK, b"7"),
            InvocationEnded("i"),
        ],
        Phase.COMPLETED,
    ),
    Case(
        "second completion is ignored",
        [leader(1), ext(Invoke("i", T, b"in", R1)), by(1, Complete("i", 0, b"7"))],
        by(1, Complete("i", 0, b"8")),
        [],
        Phase.COMPLETED,
    ),
    Case(
        "completion of a deposed leader is fenced",
        [leader(1), ext(Invoke("i", T, b"in", R1)), leader(2)],
        by(1, Complete("i", 0, b"7")),
        [],
        Phase.RUNNING,
    ),
    Case(
        "failed attempt schedules the next",
        [leader(1), ext(Invoke("i", T, b"in"))],
        by(1, AttemptFailed("i", 0, "boom", 50)),
        [ScheduleRetry("i", 1, 50)],
        Phase.RUNNING,
    ),
    Case(
        "unfenced records of a leader-less partition",
        [],
        ext(Invoke("i", T, b"in", R1)),
        [INVOKED, START],
        Phase.RUNNING,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_apply(case: Case) -> None:
    txn = MemoryTxn()
    for env in case.history:
        state_machine.apply(env, txn)
    assert state_machine.apply(case.record, txn) == case.actions
    status = state_machine.get_status(txn, "i")
    if case.phase is not None:
        assert status is not None
        assert status.phase is case.phase
    if case.journal is not None:
        assert len(state_machine.journal(txn, "i")) == case.journal
        assert status is not None
        assert status.journal_length == case.journal


def test_new_leader_restarts_running_invocations_with_their_journals() -> None:
    txn = MemoryTxn()
    for env in [
        leader(1),
        ext(Invoke("a", T, b"1")),
        ext(Invoke("b", T, b"2")),
        by(1, ProposeEntry("a", 0, 0, STEP)),
        by(1, Complete("b", 0, b"x")),
        by(1, AttemptFailed("a", 0, "boom", 10)),
        by(1, ProposeEntry("a", 0, 1, STEP)),  # attempt 0 is over: ignored
        by(1, ProposeEntry("a", 1, 1, STEP)),  # attempt 1 goes on after the replayed entry 0
    ]:
        state_machine.apply(env, txn)
    expected = StartInvocation("a", T, b"1", (STEP, STEP), 1)
    assert state_machine.running_invocations(txn) == [expected]
    assert state_machine.start_action(txn, "b") is None


def test_purge_forgets_completed_invocations_past_retention_only() -> None:
    txn = MemoryTxn()
    for env in [
        leader(1),
        ext(Invoke("old", T, b""), ts=0),
        ext(Invoke("new", T, b""), ts=0),
        ext(Invoke("running", T, b""), ts=0),
        by(1, ProposeEntry("old", 0, 0, STEP), ts=100),
        by(1, Complete("old", 0, b"1"), ts=1_000),
        by(1, Complete("new", 0, b"1"), ts=9_000),
    ]:
        state_machine.apply(env, txn)
    assert state_machine.apply(by(1, PurgeExpired(5_000), ts=10_000), txn) == []
    assert state_machine.get_status(txn, "old") is None
    assert state_machine.journal(txn, "old") == ()
    assert state_machine.get_status(txn, "new") is not None
    assert state_machine.get_status(txn, "running") is not None
    assert not list(txn.scan(keys.expiry_key(0, "old")[:9]))
    # A purge from a deposed leader does nothing.
    state_machine.apply(leader(2), txn)
    state_machine.apply(by(1, PurgeExpired(0), ts=20_000), txn)
    assert state_machine.get_status(txn, "new") is not None


def random_log(seed: int, n: int = 400) -> list[Envelope]:
    rng = random.Random(seed)
    ids = [f"i{k}" for k in range(12)]
    epoch, out = 0, []
    for t in range(n):
        inv = rng.choice(ids)
        kind = rng.randrange(8)
        e = rng.choice([epoch, epoch, epoch, max(epoch - 1, 0)])
        if kind == 0:
            epoch += rng.choice([0, 1, 1])
            out.append(Envelope(AnnounceLeader(f"w{epoch}"), epoch, "w", t))
        elif kind == 1:
            out.append(ext(Invoke(inv, T, b"x", Reply(0, f"r{t}"), send=rng.random() < 0.3), t))
        elif kind == 2:
            out.append(ext(Attach(inv, Reply(1, f"a{t}"), rng.random() < 0.5), t))
        elif kind == 3:
            out.append(by(e, ProposeEntry(inv, rng.randrange(2), rng.randrange(3), STEP), t))
        elif kind == 4:
            out.append(by(e, Complete(inv, rng.randrange(2), b"r"), t))
        elif kind == 5:
            out.append(by(e, AttemptFailed(inv, rng.randrange(2), "x", 5), t))
        elif kind == 6:
            out.append(by(e, PurgeExpired(50), t))
        else:
            out.append(by(e, Complete(inv, rng.randrange(2), None, Failure(500, "f")), t))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_replaying_the_same_log_gives_the_same_state_and_actions(seed: int) -> None:
    log = random_log(seed)
    a, b = MemoryTxn(), MemoryTxn()
    actions_a = [state_machine.apply(env, a) for env in log]
    # The second replica reads the records back through the codec, as a worker does.
    actions_b = [
        state_machine.apply(codec.decode_envelope(codec.encode_envelope(env), env.timestamp_ms), b)
        for env in log
    ]
    assert a.data == b.data
    assert actions_a == actions_b


# --- ids and codec ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [  # Kafka's UtilsTest.testMurmur2
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_kafka(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_invocation_ids_round_trip_and_route_stably() -> None:
    inv = InvocationId.new_unkeyed()
    text = str(inv)
    assert text.startswith("inv_")
    assert len(text) == 36
    assert InvocationId.parse(text) == inv
    assert inv.partition(8) == partition_for_key(inv.uid, 8)
    for bad in ("", "inv_", "inv_" + "!" * 32, "xyz_" + "a" * 32, "inv_" + "a" * 31):
        with pytest.raises(InvalidId):
            InvocationId.parse(bad)


def test_idempotent_ids_are_deterministic_and_distinct() -> None:
    a = idempotent_uid("s", "h", None, "k")
    assert a == idempotent_uid("s", "h", None, "k")
    assert (
        len(
            {
                a,
                idempotent_uid("s", "h", "", "k"),
                idempotent_uid("s", "h2", None, "k"),
                idempotent_uid("s", "h", None, "k2"),
            }
        )
        == 4
    )


def test_codec_round_trips_and_rejects_garbage() -> None:
    for env in random_log(99, 100):
        assert codec.decode_envelope(codec.encode_envelope(env), env.timestamp_ms) == env
    full = Invoke("i", Target("s", "h", "key"), b"in", R1, "k", False, (("a", "1"), ("b", "2")))
    assert codec.decode_envelope(codec.encode_envelope(ext(full)), 1000).command == full
    for status in ResponseStatus:
        r = Response("r", "i", status, b"x", Failure(1, "m"))
        assert codec.decode_response(codec.encode_response(r)) == r
    with pytest.raises(CodecError):
        codec.decode_envelope(b"\xff\xff\xff", 0)
