"""A publish waits until every earlier record of its attempt is in the log (issue 31, fault 4).

The invoker on its own, with a log writer that delivers only when the test says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError

from perdure import Context, Endpoint, Service
from perdure.engine.model import Target
from perdure.engine.records import Envelope, StartInvocation
from perdure.partitions.handlers.invoker import Invoker
from perdure.partitions.metrics import WorkerMetrics

pub = Service("pub")


@pub.handler()
async def awakeable_then_publish(ctx: Context) -> None:
    ctx.awakeable()
    await ctx.publish("t", "v")


class SlowWriter:
    """Delivers only when told: Kafka taking its time with the entry before a publish."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.undelivered: list[Callable[..., None]] = []

    def append(self, partition: int, env: Envelope, on_delivery: Callable[..., None]) -> None:
        self.records.append(env.command)
        self.undelivered.append(on_delivery)


class Publisher:
    def __init__(self, writer: SlowWriter) -> None:
        self.writer = writer
        self.undelivered_at_publish: list[int] = []

    async def publish(self, partition: int, envelope: Envelope, record: object) -> None:
        self.undelivered_at_publish.append(len(self.writer.undelivered))
        raise asyncio.CancelledError  # the test needs no more of it


@pytest.mark.asyncio
async def test_a_publish_waits_until_the_entry_before_it_is_in_the_log() -> None:
    """Issue 31, fault 4: the transaction goes through another producer than the awakeable's
    entry before it, so it could land first; the entry was then dropped as out of turn and
    the replay published again."""
    writer = SlowWriter()
    publisher = Publisher(writer)
    inv = Invoker(
        Endpoint([pub]),
        writer,  # type: ignore[arg-type]
        WorkerMetrics(),
        publisher=publisher,  # type: ignore[arg-type]
    )
    inv.start(0, 1, StartInvocation("inv_1", Target("pub", "awakeable_then_publish"), b"", (), 0))
    for _ in range(50):
        await asyncio.sleep(0)
    assert [type(r).__name__ for r in writer.records] == ["ProposeEntry"]
    assert publisher.undelivered_at_publish == [], "it published before its predecessor landed"
    writer.undelivered.pop()(None)
    for _ in range(50):
        await asyncio.sleep(0.001)
        if publisher.undelivered_at_publish:
            break
    assert publisher.undelivered_at_publish == [0]
    await inv.shutdown()


@pytest.mark.asyncio
async def test_a_publish_after_a_refused_record_restarts_the_attempt_instead() -> None:
    """Found by the simulator (seed 136): the log refused the entry before the publish, the
    publish went ahead, its entry was dropped as out of turn and the replay published again.
    This pins the outcome; the race itself (the refusal counted in the same loop pass as the
    publish's wait looks) is the simulator's planted fault ``publish-after-refusal``."""
    writer, publisher, restarts, inv = _restartable(ack_timeout_s=30.0)
    for _ in range(50):
        await asyncio.sleep(0)
    writer.undelivered.pop()(KafkaError(KafkaError._MSG_TIMED_OUT))
    for _ in range(300):  # the restart comes after the invoker's pause (1 s)
        await asyncio.sleep(0.01)
        if restarts:
            break
    assert publisher.undelivered_at_publish == [], "it published after a refused record"
    assert restarts == ["inv_1"], "the attempt starts again from the store"
    await inv.shutdown()


@pytest.mark.asyncio
async def test_a_publish_whose_predecessor_never_lands_restarts_the_attempt() -> None:
    """Found by the simulator (seed 9039): the wait timed out and only aborted the handler;
    nothing restarted it while the worker kept leading, and the invocation hung."""
    _writer, publisher, restarts, inv = _restartable(ack_timeout_s=0.05)
    for _ in range(500):  # the wait times out at 0.05 s; the restart comes 1 s after that
        await asyncio.sleep(0.01)
        if restarts:
            break
    assert publisher.undelivered_at_publish == []
    assert restarts == ["inv_1"]
    await inv.shutdown()


def _restartable(ack_timeout_s: float) -> tuple[SlowWriter, Publisher, list[str], Invoker]:
    """An invoker running ``awakeable_then_publish`` whose restarts the test records."""
    writer = SlowWriter()
    publisher = Publisher(writer)
    restarts: list[str] = []
    inv = Invoker(
        Endpoint([pub]),
        writer,  # type: ignore[arg-type]
        WorkerMetrics(),
        restart=lambda _p, invocation_id: restarts.append(invocation_id),
        ack_timeout_s=ack_timeout_s,
        publisher=publisher,  # type: ignore[arg-type]
    )
    inv.start(0, 1, StartInvocation("inv_1", Target("pub", "awakeable_then_publish"), b"", (), 0))
    return writer, publisher, restarts, inv
