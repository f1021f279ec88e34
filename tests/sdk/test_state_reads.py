"""State reads are journaled (issue 9, fault 13): a replay reads what the first attempt read."""

from __future__ import annotations

import asyncio

from engine.model import EntryKind, HandlerKind, JournalEntry, Target
from sdk import ObjectContext, ObjectSharedContext


class Journal:
    """Acknowledges proposals at once and keeps every entry, awaited or not."""

    def __init__(self, replayed: int = 0) -> None:
        self.replayed = replayed
        self.entries: list[JournalEntry] = []

    async def propose(self, index: int, entry: JournalEntry) -> None:
        assert index == self.replayed + len(self.entries)
        self.entries.append(entry)

    def record(self, index: int, entry: JournalEntry) -> None:
        assert index == self.replayed + len(self.entries)
        self.entries.append(entry)

    async def completion(self, index: int) -> JournalEntry:
        raise AssertionError("nothing waits here")


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
    assert first.entries[0] == JournalEntry(EntryKind.GET_STATE, "flag", None)
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
        return [str(value), *names]

    journal = Journal()
    ctx = ObjectContext("inv", [], journal, target=T, handler_kind=HandlerKind.EXCLUSIVE)
    assert asyncio.run(handler(ctx)) == ["1", "a"]
    read = journal.entries[0]
    assert read.kind is EntryKind.GET_STATE and read.value == b"1"
    assert [op.name for op in read.state_ops] == ["a"], "the write is journaled with the read"
    assert journal.entries[1].kind is EntryKind.GET_STATE_KEYS
