"""A publish producer that cannot go on is made anew while its worker leads (issue 31, fault 6).

On the main this issue started from, a commit that failed past its deadline (a broker outage
longer than 30 s), or an abort that failed, marked the partition's producer dead: every later
publish on the partition failed until the next rebalance. Here the producer is killed the way
those paths kill it, on the real broker; publishing goes on, and the records are exactly the
ones committed. With a lapsed lease it is not made anew (a zombie must not fence its
successor's producer).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import pytest

from perdure.engine.cluster import ClusterNames
from perdure.engine.model import EntryKind, JournalEntry, OutgoingRecord
from perdure.engine.records import Envelope, ProposeEntry
from perdure.partitions.errors import PublishError
from perdure.partitions.kafka.publisher import Publisher
from perdure.partitions.kafka.topics import ensure_topics
from perdure.partitions.lease import Lease
from tests.integration.test_publish import read_topic
from tests.integration.test_subscriptions import make_topic

pytestmark = pytest.mark.kafka


async def _publish_within(publisher: Publisher, topic: str, n: int, seconds: float) -> None:
    envelope = Envelope(ProposeEntry(f"inv_{n}", 0, n, JournalEntry(EntryKind.PUBLISH, topic)), 1)
    record = OutgoingRecord(topic, str(n).encode())
    loop = asyncio.get_running_loop()
    give_up = loop.time() + seconds
    while True:
        try:
            await publisher.publish(0, envelope, record)
            return
        except PublishError:
            if loop.time() > give_up:
                raise
            await asyncio.sleep(0.2)


def _ready(publisher: Publisher, seconds: float) -> None:
    give_up = time.monotonic() + seconds
    while not publisher.ready(0):
        assert time.monotonic() < give_up, "the publish producer never became ready"
        time.sleep(0.05)


@pytest.mark.asyncio
async def test_a_dead_publish_producer_is_made_anew_and_publishing_goes_on(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    names = ClusterNames(unique_name("pub"))
    ensure_topics(kafka_bootstrap, names, 1)
    topic = make_topic(kafka_bootstrap, unique_name("out"), partitions=1)
    publisher = Publisher(kafka_bootstrap, names, 10.0)
    try:
        publisher.prepare(0)
        _ready(publisher, 30)
        await _publish_within(publisher, topic, 1, 10)
        part = publisher._partitions[0]
        publisher._kill(part, RuntimeError("the commit failed past its deadline"))
        with pytest.raises(PublishError):
            await publisher.publish(
                0,
                Envelope(ProposeEntry("inv_x", 0, 9, JournalEntry(EntryKind.PUBLISH, topic))),
                OutgoingRecord(topic, b"x"),
            )
        await _publish_within(publisher, topic, 2, 30)
        assert part.dead == "" and not part.fenced
    finally:
        publisher.close()
    values = [m.value() for m in read_topic(kafka_bootstrap, topic)]
    assert values == [b"1", b"2"]


@pytest.mark.asyncio
async def test_without_a_current_lease_it_is_not_made_anew(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    names = ClusterNames(unique_name("pub"))
    ensure_topics(kafka_bootstrap, names, 1)
    lease = Lease(math.inf)
    publisher = Publisher(kafka_bootstrap, names, 10.0, lease=lease)
    try:
        publisher.prepare(0)
        _ready(publisher, 30)
        lease.length_s = 1.0  # lapsed: it never heard from the coordinator
        part = publisher._partitions[0]
        publisher._kill(part, RuntimeError("the abort failed"))
        await asyncio.sleep(2)
        assert part.dead and part.producer is None
    finally:
        publisher.close()
