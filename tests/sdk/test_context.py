"""The context's replay logic, driven by an in-process journal (no worker, no broker)."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pydantic
import pytest

from perdure import Context, RunOptions, TerminalError
from perdure.engine.model import EntryKind, Failure, JournalEntry
from perdure.sdk.journal import JournalMismatchError
from perdure.sdk.serde import decode, encode


class Journal:
    """Acknowledges every proposal at once and keeps what was proposed."""

    def __init__(self, replayed: int = 0) -> None:
        self.replayed = replayed
        self.entries: list[JournalEntry] = []

    async def propose(self, index: int, entry: JournalEntry, appended: object = None) -> None:
        assert index == self.replayed + len(self.entries), "proposals must arrive in index order"
        await asyncio.sleep(0)
        self.entries.append(entry)

    def may_act(self) -> bool:
        return True  # the lease of a worker that leads: always current here


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_steps_run_once_and_replay_from_the_journal() -> None:
    calls: list[str] = []

    def charge(amount: int) -> dict[str, int]:
        calls.append("charge")
        assert threading.current_thread() is not threading.main_thread(), "sync runs off-loop"
        return {"charged": amount}

    async def notify() -> bool:
        calls.append("notify")
        return True

    async def handler(ctx: Context) -> list[object]:
        return [await ctx.run("charge", charge, 5), await ctx.run("notify", notify)]

    journal = Journal()
    first = run(handler(Context("inv_1", [], journal)))
    assert first == [{"charged": 5}, True]
    assert calls == ["charge", "notify"]
    replayed = run(handler(Context("inv_1", journal.entries, Journal())))
    assert replayed == first
    assert calls == ["charge", "notify"], "a journaled step never runs again"


def test_half_journaled_invocation_runs_only_the_rest() -> None:
    calls: list[str] = []

    async def handler(ctx: Context) -> int:
        a = await ctx.run("a", lambda: calls.append("a") or 1)
        b = await ctx.run("b", lambda: calls.append("b") or 2)
        return a + b

    prefix = [JournalEntry(EntryKind.RUN, "a", value=b"10")]
    journal = Journal(replayed=1)
    assert run(handler(Context("inv", prefix, journal))) == 12
    assert calls == ["b"]


def test_terminal_failures_are_journaled_and_replayed() -> None:
    def refuse() -> None:
        raise TerminalError("card declined", 402)

    async def handler(ctx: Context) -> None:
        await ctx.run("charge", refuse)

    journal = Journal()
    with pytest.raises(TerminalError) as err:
        run(handler(Context("inv", [], journal)))
    assert (err.value.status_code, err.value.message) == (402, "card declined")
    assert journal.entries[0].failure == Failure(402, "card declined")
    with pytest.raises(TerminalError, match="card declined"):
        run(handler(Context("inv", journal.entries, Journal())))


def test_run_options_retry_in_place_then_journal_a_terminal_failure() -> None:
    attempts: list[int] = []

    def flaky() -> None:
        attempts.append(1)
        raise RuntimeError("nope")

    async def handler(ctx: Context) -> None:
        await ctx.run("x", flaky, options=RunOptions(max_attempts=3, initial_interval=timedelta(0)))

    journal = Journal()
    with pytest.raises(TerminalError, match="failed after 3 attempts"):
        run(handler(Context("inv", [], journal)))
    assert len(attempts) == 3
    assert journal.entries[0].failure is not None


def test_without_run_options_an_error_fails_the_attempt_and_journals_nothing() -> None:
    async def handler(ctx: Context) -> None:
        await ctx.run("x", lambda: 1 / 0)

    journal = Journal()
    with pytest.raises(ZeroDivisionError):
        run(handler(Context("inv", [], journal)))
    assert journal.entries == []


def test_a_changed_handler_is_a_journal_mismatch() -> None:
    async def handler(ctx: Context) -> None:
        await ctx.run("renamed", lambda: 1)

    with pytest.raises(JournalMismatchError, match="journal mismatch at entry 0"):
        run(handler(Context("inv", [JournalEntry(EntryKind.RUN, "old", value=b"1")], Journal())))


def test_concurrent_steps_are_proposed_in_index_order() -> None:
    async def slow() -> str:
        await asyncio.sleep(0.05)
        return "slow"

    async def fast() -> str:
        return "fast"

    async def handler(ctx: Context) -> list[str]:
        return list(await asyncio.gather(ctx.run("slow", slow), ctx.run("fast", fast)))

    journal = Journal()
    assert run(handler(Context("inv", [], journal))) == ["slow", "fast"]
    assert [e.name for e in journal.entries] == ["slow", "fast"]


def test_step_idempotency_key_names_the_step() -> None:
    async def handler(ctx: Context) -> list[str]:
        async def a() -> str:
            return ctx.step_idempotency_key()

        return [await ctx.run("a", a), await ctx.run("b", ctx.step_idempotency_key)]

    assert run(handler(Context("inv_9", [], Journal()))) == ["inv_9:0", "inv_9:1"]
    with pytest.raises(TerminalError):
        Context("inv", [], Journal()).step_idempotency_key()


class Model(pydantic.BaseModel):
    n: int


def test_typed_step_results_survive_replay() -> None:
    def make() -> Model:
        return Model(n=3)

    async def handler(ctx: Context) -> Model:
        return await ctx.run("m", make)

    journal = Journal()
    assert run(handler(Context("inv", [], journal))) == Model(n=3)
    assert run(handler(Context("inv", journal.entries, Journal()))) == Model(n=3)


def test_serde_validates_and_reports_400() -> None:
    assert decode(encode({"n": 1}), Model) == Model(n=1)
    with pytest.raises(TerminalError) as err:
        decode(b'{"n": "x"}', Model, what="the body")
    assert err.value.status_code == 400
    with pytest.raises(TerminalError):
        decode(b"{nope")
    assert decode(b"") is None
