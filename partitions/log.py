"""LogWriter: appends records to the cluster's topics through one idempotent producer.

The producer is shared by the processor thread and the invoker's event loop (librdkafka is
thread-safe); delivery callbacks run on the processor thread, which polls the producer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from confluent_kafka import KafkaError, Message, Producer

from perdure.engine import codec, schemas
from perdure.engine.cluster import ClusterNames
from perdure.engine.model import OutgoingRecord
from perdure.engine.records import Envelope, Response, SendResponse
from perdure.process.kafka_settings import producer_settings

DeliveryCallback = Callable[[KafkaError | None], None]

LOG_HEADERS: list[tuple[str, str | bytes | None]] = [
    (schemas.VERSION_HEADER, str(schemas.SCHEMA_VERSION).encode())
]
"""The headers of every log record (the publisher's transactions write log records too)."""


class LogAppender(Protocol):
    """What the invoker needs of the log: append one record to a partition.

    Kafka (:class:`LogWriter`) in workers; an in-memory log in ``partitions.testing``.
    ``on_delivery`` is called with None once the record is durable, or with the error.
    """

    def append(
        self, partition: int, envelope: Envelope, on_delivery: DeliveryCallback | None = None
    ) -> None: ...


class RecordPublisher(Protocol):
    """What the invoker needs for ``ctx.publish``: a user's record and the log record of its
    journal entry, written both or neither.

    Kafka transactions in workers (partitions/kafka/publisher.py); in memory in a test runtime
    (partitions/local/memory_publisher.py).
    """

    async def publish(self, partition: int, envelope: Envelope, record: OutgoingRecord) -> None: ...


class LogWriter:
    """Appends envelopes to the log and responses to the responses topic."""

    def __init__(self, bootstrap: str, names: ClusterNames, timeout_s: float = 15.0) -> None:
        self.names = names
        settings = dict(producer_settings(bootstrap))
        settings["message.timeout.ms"] = int(timeout_s * 1000)
        self.producer = Producer(settings)
        self._stop = threading.Event()
        # Delivery callbacks must not wait for the processor loop: a thread of their own.
        self._poller = threading.Thread(
            target=self._poll_forever, name="producer-poll", daemon=True
        )
        self._poller.start()

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def append(
        self, partition: int, envelope: Envelope, on_delivery: DeliveryCallback | None = None
    ) -> None:
        """Appends one record to ``partition`` of the log."""
        self._produce(self.names.log_topic, partition, codec.encode_envelope(envelope), on_delivery)

    def answer(self, action: SendResponse) -> None:
        """Sends the response of a :class:`SendResponse` to the caller's partition."""
        self.respond(action.reply.partition, action.response)

    def respond(self, partition: int, response: Response) -> None:
        """Sends a response to a partition of the responses topic."""
        self._produce(self.names.responses_topic, partition, codec.encode_response(response), None)

    def _produce(
        self, topic: str, partition: int, value: bytes, on_delivery: DeliveryCallback | None
    ) -> None:
        # No callback when nobody listens (on_delivery=None is librdkafka's "none"): each is a
        # call into Python, under the GIL, on the poller thread.
        delivered: Callable[[KafkaError | None, Message], None] | None = None
        if on_delivery is not None:
            listener = on_delivery

            def delivered(err: KafkaError | None, _msg: Message) -> None:
                listener(err)

        while True:
            try:
                self.producer.produce(
                    topic,
                    value=value,
                    partition=partition,
                    headers=LOG_HEADERS,
                    on_delivery=delivered,
                )
                return
            except BufferError:
                self._stop.wait(0.01)  # the local queue is full: the poller drains it

    def close(self, timeout: float = 10) -> int:
        """Waits for outstanding records and stops; returns how many were not delivered."""
        left = int(self.producer.flush(timeout))
        self._stop.set()
        self._poller.join(2)
        return left
