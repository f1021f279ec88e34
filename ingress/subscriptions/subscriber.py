"""SubscriptionRunner: one subscription's consumer, turning each record into one invocation.

How a record runs exactly once:

- Its invocation id is derived from (subscription, topic, partition, offset) (for a workflow
  sink: from the workflow id, the record's key, as for any workflow start), so reading a record
  again after a crash or a rebalance names the invocation that already exists, and the
  partition only attaches to it.
- The consumer group's offset is committed only below records whose invocation *ended* (or
  that went to the dead-letter topic): a crash re-reads what had not ended, never skips.
- Records of one topic-partition are appended to the log in their order by one idempotent
  producer, so exclusive handlers of one key see them in that order (the key's inbox keeps it).
  With ``ordering: partition`` a record is appended only once the one before it in its
  topic-partition has ended.

A failure of Kafka under the runner (an append or a dead letter not taken) restarts its consumer
from the committed offsets: what was in flight is read again and deduplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from perdure.engine.cluster import ClusterNames
from perdure.engine.model import Reply
from perdure.engine.records import Envelope, ResponseStatus
from perdure.engine.subscriptions import ORDERING_PARTITION, Subscription
from perdure.ingress.kafka import LogProducer
from perdure.ingress.subscriptions import records
from perdure.ingress.subscriptions.dead_letters import (
    DeadLetter,
    DeadLetters,
    why_headers,
)
from perdure.ingress.subscriptions.metrics import SubscriptionMetrics
from perdure.ingress.subscriptions.offsets import OffsetTracker, TopicPart
from perdure.process.kafka_clusters import KafkaClusters
from perdure.process.kafka_settings import heartbeat_interval_ms

if TYPE_CHECKING:
    from perdure.ingress.app import Ingress

log = logging.getLogger("perdure.subscriptions")

COMMIT_INTERVAL_S = 1.0
LAG_INTERVAL_S = 2.0
RESTART_PAUSE_S = 2.0
SESSION_TIMEOUT_MS = 10_000
"""The subscription consumers' default ``session.timeout.ms`` (an option may set another)."""


class _Restart(Exception):
    """Kafka failed under the runner: start the consumer again from the committed offsets."""


class SubscriptionRunner:
    """Consumes ``sub.source`` in the subscription's consumer group and invokes ``sub.sink``.

    Args:
        sub: the subscription.
        ingress: the process's ingress core (log producer, answers, service registry).
        clusters: the Kafka clusters known by name.
        names: the Perdure cluster's topic names.
        metrics: where its figures go.
    """

    def __init__(
        self,
        sub: Subscription,
        ingress: Ingress,
        clusters: KafkaClusters,
        names: ClusterNames,
        metrics: SubscriptionMetrics,
    ) -> None:
        self.sub = sub
        self._ingress = ingress
        self._client = clusters.settings(sub.source.cluster)
        self._group = names.subscription_group(sub.id)
        self.dead_letter_topic = sub.options.get("dead_letter_topic") or names.dead_letter_topic
        self._dead_letters = DeadLetters(self._client, self.dead_letter_topic)
        self._metrics = metrics
        self._tracker = OffsetTracker()
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: dict[TopicPart, asyncio.Task[None]] = {}
        self._failure: BaseException | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._assigned: list[TopicPart] = []
        self._lag = 0
        self._records = 0
        self._dead_lettered = 0
        self._rate: deque[tuple[float, int]] = deque(maxlen=16)
        self.state = "starting"

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"subscription-{self.sub.id}")

    async def stop(self) -> None:
        """Stops consuming: nothing is appended for it once this returns."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._session()
            except _Restart as err:
                self.state = "restarting"
                log.warning("subscription %s: %s; reading again from its commits", self.sub.id, err)
            except Exception:
                self.state = "restarting"
                log.exception("subscription %s failed; starting it again", self.sub.id)
            if not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), RESTART_PAUSE_S)
        self.state = "stopped"

    async def _session(self) -> None:
        self._failure = None
        try:
            await asyncio.to_thread(self._dead_letters.open)
        except KafkaException as err:
            raise _Restart(f"cannot make sure {self.dead_letter_topic} exists: {err}") from err
        # An admin process that died hands its share over within this, not librdkafka's 45 s.
        session = int(self.sub.consumer_settings.get("session.timeout.ms", SESSION_TIMEOUT_MS))
        settings: dict[str, Any] = {
            **self._client,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": session,
            "heartbeat.interval.ms": heartbeat_interval_ms(session),
            **self.sub.consumer_settings,
            "group.id": self._group,
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
        try:
            consumer = Consumer(settings)
        except KafkaException as err:
            self.state = "failed"
            raise _Restart(f"cannot make its consumer: {err}") from err
        consumer.subscribe(
            [self.sub.source.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        self.state = "running"
        log.info(
            "subscription %s: %s -> %s (group %s)",
            self.sub.id,
            self.sub.source.uri,
            self.sub.sink.uri,
            self._group,
        )
        next_commit = next_lag = time.monotonic()
        try:
            while not self._stopping.is_set():
                if not await self._sink_ready():
                    continue
                self._backpressure(consumer)
                room = max(1, min(500, self.sub.max_in_flight - len(self._tasks)))
                batch = await asyncio.to_thread(consumer.consume, room, 0.2)
                for msg in batch:
                    if self._stopping.is_set():
                        break
                    self._check(msg)
                    if msg.error() is None:
                        await self._take(msg)
                self._dead_letters.poll()
                if self._failure is not None:
                    raise _Restart(str(self._failure))
                now = time.monotonic()
                if now >= next_commit:
                    self._commit(consumer, wait=False)
                    next_commit = now + COMMIT_INTERVAL_S
                if now >= next_lag:
                    self._measure_lag(consumer)
                    next_lag = now + LAG_INTERVAL_S
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            self._last.clear()
            await asyncio.to_thread(self._close, consumer)

    def _close(self, consumer: Consumer) -> None:
        self._commit(consumer)
        consumer.close()
        self._dead_letters.close()

    def _check(self, msg: Message) -> None:
        err = msg.error()
        if err is None:
            return
        if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            log.warning("subscription %s: topic %s does not exist", self.sub.id, msg.topic())
            return
        if err.fatal():
            raise _Restart(f"its consumer failed: {err}")
        log.warning("subscription %s: consumer: %s", self.sub.id, err)

    async def _sink_ready(self) -> bool:
        """Whether the sink's service is in the registry (a worker hosting it started once)."""
        registry = self._ingress.registry
        service = self.sub.sink.service
        if registry is not None and self._ingress.ready and service in registry.services:
            return True
        if self.state != "waiting for its sink":
            log.info("subscription %s: waiting for a worker hosting %s", self.sub.id, service)
        self.state = "waiting for its sink"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), 0.5)
        return False

    # -- rebalances and commits (on the consumer's thread) --------------------------------------

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned = [(tp.topic, tp.partition) for tp in partitions]
        log.info(
            "subscription %s: assigned partitions %s", self.sub.id, [p for _, p in self._assigned]
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit(consumer)
        gone = [(tp.topic, tp.partition) for tp in partitions]
        self._tracker.forget(gone)
        self._assigned = [tp for tp in self._assigned if tp not in gone]
        self._paused = False

    def _commit(self, consumer: Consumer, wait: bool = True) -> None:
        """Commits below the first unfinished record of each partition.

        The periodic commit does not wait (``wait=False``): with one connection per broker, a
        synchronous commit queues behind the consumer's long-poll fetch and stalled the loop for
        up to ``fetch.wait.max.ms`` each time. A lost asynchronous commit only means more
        records read again (and deduplicated); the commits at a revoke and at the close wait."""
        positions = {tp: n for tp, n in self._tracker.to_commit().items() if tp in self._assigned}
        if not positions:
            return
        offsets = [TopicPartition(t, p, n) for (t, p), n in positions.items()]
        try:
            if wait:
                consumer.commit(offsets=offsets, asynchronous=False)
            else:
                consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as err:
            # Not fatal: the commit is only where a re-read would start.
            log.warning("subscription %s: commit failed: %s", self.sub.id, err)
            return
        self._tracker.committed(positions)

    def _measure_lag(self, consumer: Consumer) -> None:
        """Lag from what the consumer already knows: no request to the broker.

        The high watermarks come with every fetch response (``cached=True``); a request of its
        own would wait behind the long-poll fetch on the same connection, ~0.5 s a partition,
        which is what once held a drain to ~125 records/s."""
        lag = 0
        for topic, partition in list(self._assigned):
            tp = TopicPartition(topic, partition)
            try:
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            done = self._tracker.position((topic, partition))
            if done is None:
                done = consumer.position([tp])[0].offset
            if high >= 0 and done is not None and done >= 0:
                lag += max(high - done, 0)
        self._lag = lag
        self._metrics.lag.labels(self.sub.id).set(lag)
        self._rate.append((time.monotonic(), self._records))

    def _backpressure(self, consumer: Consumer) -> None:
        """Pauses at ``max_in_flight``; resumes only once half of it is free.

        A resume costs a fetch round trip (the paused partitions' prefetched records are
        dropped), so resuming for every invocation that ends made the drain of a backlog a
        series of fetches of one record each."""
        in_flight, limit = len(self._tasks), self.sub.max_in_flight
        full = in_flight >= limit if not self._paused else in_flight > limit // 2
        if full == self._paused:
            return
        assignment = consumer.assignment()
        if full:
            consumer.pause(assignment)
        else:
            consumer.resume(assignment)
        self._paused = full
        self._metrics.paused.labels(self.sub.id).set(1 if full else 0)

    # -- records --------------------------------------------------------------------------------

    async def _take(self, msg: Message) -> None:
        tp: TopicPart = (msg.topic() or "", msg.partition() or 0)
        offset = msg.offset() or 0
        generation = self._tracker.read(tp, offset)
        self._records += 1
        self._metrics.records.labels(self.sub.id).inc()
        try:
            prepared = records.prepare(self.sub, self._ingress, msg, tp, offset)
        except DeadLetter as dead:
            self._spawn(tp, self._dead_letter_then_finish(msg, dead, tp, offset, generation))
            return
        previous = self._last.get(tp) if self.sub.ordering == ORDERING_PARTITION else None
        if previous is not None and not previous.done():
            self._spawn(tp, self._after(previous, msg, prepared, tp, offset, generation))
            return
        request_id, answer, delivered = await self._append(prepared)
        self._spawn(
            tp, self._finish(msg, prepared, request_id, answer, delivered, tp, offset, generation)
        )

    def _spawn(self, tp: TopicPart, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        self._last[tp] = task
        self._metrics.in_flight.labels(self.sub.id).set(len(self._tasks))
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._metrics.in_flight.labels(self.sub.id).set(len(self._tasks))
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    async def _append(
        self, prepared: records.Prepared
    ) -> tuple[str, asyncio.Future[Any], asyncio.Future[None]]:
        """Appends the invocation now (in the order of the calls); the answer's waiter is in
        place before the record can be read."""
        ingress = self._ingress
        # Subscriptions run in the admin, which always has Kafka (never an embedded log).
        assert isinstance(ingress.producer, LogProducer)
        request_id = uuid.uuid4().hex
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ingress.waiters[request_id] = answer
        reply = Reply(ingress.reply_partition, request_id)
        record = Envelope(replace(prepared.invoke, reply=reply))
        while True:
            try:
                delivered = ingress.producer.enqueue(prepared.partition, prepared.key, record)
                return request_id, answer, delivered
            except BufferError:
                await asyncio.sleep(0.01)

    async def _after(
        self,
        previous: asyncio.Task[None],
        msg: Message,
        prepared: records.Prepared,
        tp: TopicPart,
        offset: int,
        generation: int,
    ) -> None:
        await asyncio.wait([previous])
        request_id, answer, delivered = await self._append(prepared)
        await self._finish(msg, prepared, request_id, answer, delivered, tp, offset, generation)

    async def _finish(
        self,
        msg: Message,
        prepared: records.Prepared,
        request_id: str,
        answer: asyncio.Future[Any],
        delivered: asyncio.Future[None],
        tp: TopicPart,
        offset: int,
        generation: int,
    ) -> None:
        ingress = self._ingress
        try:
            try:
                await delivered
            except KafkaException as err:
                raise _Restart(f"the log did not take the invocation: {err}") from err
            response = await ingress.await_answer(answer, prepared.inv, request_id)
        finally:
            ingress.waiters.pop(request_id, None)
        if response.status is ResponseStatus.FAILED:
            failure = response.failure
            dead = DeadLetter(
                "failed",
                failure.message if failure is not None else "failed",
                failure.code if failure is not None else 500,
                str(prepared.inv),
            )
            await self._dead_letter(msg, dead, tp, offset)
        self._tracker.finished(tp, offset, generation)

    async def _dead_letter_then_finish(
        self, msg: Message, dead: DeadLetter, tp: TopicPart, offset: int, generation: int
    ) -> None:
        await self._dead_letter(msg, dead, tp, offset)
        self._tracker.finished(tp, offset, generation)

    async def _dead_letter(
        self, msg: Message, dead: DeadLetter, tp: TopicPart, offset: int
    ) -> None:
        """Puts the record in the dead-letter topic, as it came, with headers saying why (at
        least once: see ingress/subscriptions/dead_letters.py)."""
        try:
            await self._dead_letters.send(msg, why_headers(msg, dead, self.sub.id))
        except KafkaException as err:
            raise _Restart(f"the dead-letter topic did not take a record: {err}") from err
        self._dead_lettered += 1
        self._metrics.dead_lettered.labels(self.sub.id, dead.reason).inc()
        log.warning(
            "subscription %s: %s/%d@%d to %s (%s): %s",
            self.sub.id,
            tp[0],
            tp[1],
            offset,
            self.dead_letter_topic,
            dead.reason,
            dead.message,
        )

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What this process's runner knows: for ``GET /subscriptions/{id}``."""
        rate = 0.0
        if len(self._rate) >= 2:
            (t0, n0), (t1, n1) = self._rate[0], self._rate[-1]
            rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
        return {
            "state": self.state,
            "partitions": sorted(p for _, p in self._assigned),
            "records": self._records,
            "records_per_s": round(rate, 1),
            "in_flight": len(self._tasks),
            "paused": self._paused,
            "lag": self._lag,
            "dead_lettered": self._dead_lettered,
            "dead_letter_topic": self.dead_letter_topic,
        }
