"""The ingress's Kafka side: topic check, the log producer, the registry and response readers."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from perdure.engine import codec, replication, schemas
from perdure.engine.cluster import LOG_SEGMENT_BYTES, ClusterNames, topic_specs
from perdure.engine.records import Envelope, Response
from perdure.process.client_logs import CLIENT_LOGGER, ConnectionTrouble
from perdure.process.kafka_settings import client_settings, producer_settings
from perdure.process.tables import TopicReader, log_end

log = logging.getLogger("perdure.ingress")

_HEADERS: list[tuple[str, str | bytes | None]] = [
    (schemas.VERSION_HEADER, str(schemas.SCHEMA_VERSION).encode())
]


def create_topic_if_missing(
    client: dict[str, str], topic: str, config: dict[str, str] | None = None
) -> None:
    """Creates a one-partition topic on the cluster of ``client`` unless it exists.

    Raises:
        KafkaException: the cluster does not answer or refuses the topic.
    """
    admin = AdminClient(dict(client))
    if topic in admin.list_topics(timeout=10).topics:
        return
    spec = NewTopic(topic, 1, replication_factor=-1, config=config or {})
    try:
        admin.create_topics([spec])[topic].result(15)
    except KafkaException as err:
        if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


class KafkaUnreachable(KafkaException):
    """The cluster did not answer; the message says why, as far as the client knows."""


def prepare_topics(
    bootstrap: str,
    names: ClusterNames,
    partitions: int,
    segment_bytes: int = LOG_SEGMENT_BYTES,
    replication_factor: int = 0,
    min_insync_replicas: int = 0,
) -> tuple[int, int]:
    """Creates the cluster's topics if no worker has yet; returns (log, responses) partitions.

    New topics are replicated as a worker would (engine/replication.py); workers check the
    replication of the log and warn.

    Raises:
        KafkaUnreachable: the cluster does not answer.
        ReplicationError: the replication asked for cannot be had there.
    """
    trouble = ConnectionTrouble()
    admin = AdminClient(client_settings(bootstrap, logger=CLIENT_LOGGER, error_cb=trouble))
    try:
        cluster = admin.list_topics(timeout=15)
    except KafkaException as err:
        raise KafkaUnreachable(trouble.explain(err, admin)) from err
    existing = cluster.topics
    chosen = replication.choose(len(cluster.brokers), replication_factor, min_insync_replicas)
    specs = topic_specs(names, partitions, segment_bytes, chosen)
    missing = [t for t in specs if t.name not in existing]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    t.name, t.partitions, replication_factor=t.replication_factor, config=t.config
                )
                for t in missing
            ]
        )
        for future in futures.values():
            try:
                future.result(timeout=15)
            except KafkaException as err:
                if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    # A topic just created (here or by a worker) may show up before its partitions do.
    for _ in range(100):
        md = admin.list_topics(timeout=15).topics
        counts = tuple(
            len(md[t].partitions) if t in md and md[t].error is None else 0
            for t in (names.log_topic, names.responses_topic)
        )
        if all(counts):
            return counts[0], counts[1]
        time.sleep(0.2)
    raise RuntimeError(f"the topics of cluster {names.name!r} have no partitions")


class LogProducer:
    """Appends records to the log; ``append`` resolves once Kafka has them (acks=all)."""

    def __init__(self, bootstrap: str, names: ClusterNames, timeout_s: float) -> None:
        settings: dict[str, Any] = dict(producer_settings(bootstrap))
        settings["message.timeout.ms"] = int(timeout_s * 1000)
        self._producer = Producer(settings)
        self._names = names
        self._loop: asyncio.AbstractEventLoop | None = None
        # Delivery reports, gathered during one poll and handed to the loop in one wake-up
        # (one per report cost a syscall and a thread switch each). A deque: appended and
        # taken from on different threads without a lock.
        self._reports: collections.deque[tuple[asyncio.Future[None], KafkaError | None]] = (
            collections.deque()
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="ingress-producer", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)
            self._hand_over()

    def _hand_over(self) -> None:
        reports = []
        while True:
            try:
                reports.append(self._reports.popleft())
            except IndexError:
                break
        if reports and self._loop is not None:
            self._loop.call_soon_threadsafe(_settle_all, reports)

    async def append(self, partition: int, key: bytes | None, envelope: Envelope) -> None:
        """Appends a record; raises :class:`KafkaException` if Kafka did not take it."""
        while True:
            try:
                done = self.enqueue(partition, key, envelope)
                break
            except BufferError:
                await asyncio.sleep(0.01)
        await done

    def enqueue(
        self, partition: int, key: bytes | None, envelope: Envelope
    ) -> asyncio.Future[None]:
        """Hands a record to the producer now, on the running loop; the future resolves once
        Kafka has it (or fails with :class:`KafkaException`). Records enqueued one after
        another reach their partition in that order (the producer is idempotent).

        Raises:
            BufferError: the producer's queue is full; try again a little later.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        done: asyncio.Future[None] = loop.create_future()
        reports = self._reports

        def delivered(err: KafkaError | None, _msg: object) -> None:
            reports.append((done, err))

        self._producer.produce(
            self._names.log_topic,
            key=key,
            value=codec.encode_envelope(envelope),
            partition=partition,
            headers=_HEADERS,
            on_delivery=delivered,
        )
        return done

    def close(self) -> None:
        """Flushes and stops."""
        self._producer.flush(5)
        self._stop.set()
        self._thread.join(2)
        self._hand_over()


def _settle_all(reports: list[tuple[asyncio.Future[None], KafkaError | None]]) -> None:
    for fut, err in reports:
        settle(fut, err)


def settle(fut: asyncio.Future[None], err: KafkaError | None) -> None:
    """Resolves a delivery's future from its report (on the future's loop)."""
    if fut.done():
        return
    if err is None:
        fut.set_result(None)
    else:
        fut.set_exception(KafkaException(err))


class ResponseReader(TopicReader):
    """Reads this replica's partition of the responses topic and wakes the waiting requests."""

    def __init__(
        self,
        bootstrap: str,
        names: ClusterNames,
        partition: int,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[Response], None],
    ) -> None:
        super().__init__(bootstrap, f"ingress-responses-{partition}")
        tp = TopicPartition(names.responses_topic, partition)
        # Start at the current end: only answers to requests from now on matter.
        tp.offset = log_end(self._consumer, tp)
        self._consumer.assign([tp])
        self._loop = loop
        self._deliver = deliver
        self._read: list[Response] = []
        self._thread.start()

    def handle(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        if value is None:
            return
        try:
            response = codec.decode_response(value)
        except Exception:
            log.warning("responses: unreadable record at offset %d", offset)
            return
        self._read.append(response)

    def idle(self) -> None:
        # The responses of one fetch wake the loop once (on this reader's thread only).
        if self._read:
            read, self._read = self._read, []
            self._loop.call_soon_threadsafe(self._deliver_all, read)

    def _deliver_all(self, responses: list[Response]) -> None:
        for response in responses:
            try:
                self._deliver(response)
            except Exception:  # one waiter's trouble must not starve the others
                log.exception("responses: delivering %s failed", response.invocation_id)
