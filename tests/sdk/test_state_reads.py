"""State reads are journaled (issue 9, fault 13): a replay reads what the first attempt read."""

from __future__ import annotations

import asyncio

from perdure import ObjectContext, ObjectSharedContext
from perdure.engine.model import EntryKind, HandlerKind, JournalEntry, StateOp, StateOpKind, Target


class Journal:
    """Acknowledges proposals at once and keeps every entry, awaited or not."""

    def __init__(self, replayed: int = 0) -> None:
        self.replayed = replayed
        self.entries: list[JournalEntry] = []

    async def propose(self, index: int, entry: JournalEntry, appended: object = None) -> None:
        assert index == self.replayed + len(self.entries)
        self.entries.append(entry)

    async def completion(self, index: int) -> JournalEntry:
        raise AssertionError("nothing waits here")

    def may_act(self) -> bool:
        return True


T = Target("counter", "get", "k")


async def branch_on_state(ctx: ObjectSharedContext) -> str:
    flag = await ctx.get("flag")
    if flag:
        await ctx.run("yes", lambda: "y")
        return "yes"
    await ctx.run("no", lambda: "n")
    return "no"


def test_a_replay_reads_the_journaled_value_not_todays_state() -> None:
    first = Journal()
    ctx = ObjectSharedContext("inv", [], first, target=T, handler_kind=HandlerKind.SHARED)
    assert asyncio.run(branch_on_state(ctx)) == "no"
    # The read rides on the entry after it: no record of its own.
    assert first.entries == [
        JournalEntry(EntryKind.RUN, "no", b'"n"', state_ops=(StateOp(StateOpKind.READ, "flag"),))
    ]
    # The state changed before the replay (another invocation set the flag).
    replay = ObjectSharedContext(
        "inv", first.entries, Journal(len(first.entries)), target=T, state=[("flag", b"true")]
    )
    assert asyncio.run(branch_on_state(replay)) == "no", "same branch as the first attempt"


def test_reads_see_the_handlers_own_writes_and_ride_with_them() -> None:
    async def handler(ctx: ObjectContext) -> list[str]:
        ctx.set("a", 1)
        value = await ctx.get("a")
        names = await ctx.state_keys()
        await ctx.run("step", lambda: None)
        return [str(value), *names]

    journal = Journal()
    ctx = ObjectContext("inv", [], journal, target=T, handler_kind=HandlerKind.EXCLUSIVE)
    assert asyncio.run(handler(ctx)) == ["1", "a"]
    ops = journal.entries[0].state_ops
    assert [(op.kind, op.name) for op in ops] == [
        (StateOpKind.SET, "a"),
        (StateOpKind.READ, "a"),
        (StateOpKind.READ_KEYS, ""),
    ], "in the order the handler did them"
    replay = ObjectContext("inv", journal.entries, Journal(1), target=T, state=[("a", b"5")])
    assert asyncio.run(handler(replay)) == ["1", "a"]


def test_reads_after_the_last_entry_are_not_in_the_completion() -> None:
    async def handler(ctx: ObjectContext) -> int:
        value: int = await ctx.get("n") or 0
        ctx.set("n", value + 1)
        return value + 1

    ctx = ObjectContext("inv", [], Journal(), target=T, handler_kind=HandlerKind.EXCLUSIVE)
    assert asyncio.run(handler(ctx)) == 1
    assert [op.kind for op in ctx.take_pending_state_ops()] == [StateOpKind.SET]
