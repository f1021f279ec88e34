"""ctx.publish in the context: journaled once, replayed without publishing, bad input refused."""

from __future__ import annotations

import asyncio

import pytest

from perdure import Context, TerminalError
from perdure.engine.model import EntryKind, JournalEntry, OutgoingRecord
from perdure.sdk.publishing import PUBLISH_ID_HEADER, outgoing_record


class Journal:
    """Acknowledges every proposal at once; keeps what was proposed and published."""

    def __init__(self) -> None:
        self.entries: list[JournalEntry] = []
        self.published: list[tuple[int, OutgoingRecord]] = []

    async def propose(self, index: int, entry: JournalEntry, appended: object = None) -> None:
        assert index == len(self.entries), "proposals must arrive in index order"
        self.entries.append(entry)

    def may_act(self) -> bool:
        return True  # the lease of a worker that leads: always current here

    async def publish(self, index: int, entry: JournalEntry, record: OutgoingRecord) -> None:
        assert index == len(self.entries)
        self.entries.append(entry)
        self.published.append((index, record))


async def handler(ctx: Context) -> int:
    a = await ctx.run("a", lambda: 1)
    await ctx.publish("orders.paid", {"order": "o-1"}, key="o-1", headers={"kind": "paid"})
    b = await ctx.run("b", lambda: 2)
    await ctx.publish("raw", b"\x00\x01")
    return a + b


def test_a_publish_is_an_entry_of_its_own_and_a_replay_publishes_nothing() -> None:
    journal = Journal()
    assert asyncio.run(handler(Context("inv_1", [], journal))) == 3
    assert [e.kind for e in journal.entries] == [
        EntryKind.RUN,
        EntryKind.PUBLISH,
        EntryKind.RUN,
        EntryKind.PUBLISH,
    ]
    assert [e.name for e in journal.entries if e.kind is EntryKind.PUBLISH] == [
        "orders.paid",
        "raw",
    ]
    (i1, paid), (i2, raw) = journal.published
    assert (i1, i2) == (1, 3)
    assert paid.topic == "orders.paid" and paid.key == b"o-1"
    assert paid.value == b'{"order":"o-1"}'
    assert paid.headers == (("kind", b"paid"), (PUBLISH_ID_HEADER, b"inv_1:1"))
    assert raw.value == b"\x00\x01" and raw.key is None

    again = Journal()
    assert asyncio.run(handler(Context("inv_1", journal.entries, again))) == 3
    assert again.published == [] and again.entries == []


def test_a_replay_that_meets_another_topic_is_a_mismatch() -> None:
    journal = [JournalEntry(EntryKind.RUN, "a", value=b"1"), JournalEntry(EntryKind.PUBLISH, "x")]
    with pytest.raises(TerminalError, match="journal mismatch at entry 1"):
        asyncio.run(handler(Context("inv_1", journal, Journal())))


@pytest.mark.parametrize("topic", ["", "has space", "a/b", "é", "x" * 250, ".."])
def test_a_topic_kafka_refuses_is_a_terminal_error_that_leaves_no_hole(topic: str) -> None:
    journal = Journal()

    async def bad(ctx: Context) -> int:
        with pytest.raises(TerminalError, match="not a Kafka topic name"):
            await ctx.publish(topic, 1)
        return await ctx.run("after", lambda: 5)

    assert asyncio.run(bad(Context("inv", [], journal))) == 5
    assert [e.kind for e in journal.entries] == [EntryKind.RUN], "the index was not taken"


def test_values_keys_and_headers_encode_as_documented() -> None:
    assert outgoing_record("t", "text", None, None, "i:0").value == b'"text"'
    assert outgoing_record("t", None, None, None, "i:0").value == b"null"
    assert outgoing_record("t", [1, 2], b"\xff", None, "i:0").key == b"\xff"
    assert outgoing_record("t", 1, None, {"b": b"\x00"}, "i:0").headers[0] == ("b", b"\x00")
    with pytest.raises(TerminalError, match="Perdure's own"):
        outgoing_record("t", 1, None, {PUBLISH_ID_HEADER: "x"}, "i:0")
    with pytest.raises(TerminalError, match="cannot serialize"):
        outgoing_record("t", object(), None, None, "i:0")
