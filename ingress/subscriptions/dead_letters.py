"""DeadLetters: records Perdure could not deliver, put as they came into a dead-letter topic.

The headers that say why are named here, for subscriptions and the forwarder alike; their names
never change meaning. At least once: a crash after a dead letter and before the source's commit
sends it again (the ``perdure.source.*`` headers name the record, to deduplicate by).
"""

from __future__ import annotations

import asyncio
from typing import cast

from confluent_kafka import KafkaError, Message, Producer

from perdure.ingress.kafka import create_topic_if_missing, settle

Headers = list[tuple[str, str | bytes | None]]


class DeadLetter(Exception):
    """A record that cannot become an invocation, or whose invocation failed for good."""

    def __init__(self, reason: str, message: str, code: int = 400, invocation_id: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.code = code
        self.invocation_id = invocation_id


def own_headers(msg: Message) -> Headers:
    """The record's own headers, as librdkafka gives them."""
    return list(cast("Headers", msg.headers() or []))


def why_headers(msg: Message, dead: DeadLetter, subscription: str = "") -> Headers:
    """The source record's headers, then where it came from and why it is a dead letter."""
    headers = own_headers(msg)
    if subscription:
        headers.append(("perdure.subscription", subscription))
    headers += [
        ("perdure.source.topic", msg.topic() or ""),
        ("perdure.source.partition", str(msg.partition())),
        ("perdure.source.offset", str(msg.offset())),
        ("perdure.error.reason", dead.reason),
        ("perdure.error.code", str(dead.code)),
        ("perdure.error", dead.message),
    ]
    if dead.invocation_id or subscription:
        headers.append(("perdure.invocation", dead.invocation_id))
    return headers


class DeadLetters:
    """An idempotent producer to one dead-letter topic (created when missing).

    Args:
        client: librdkafka settings of the cluster the topic is on.
        topic: the dead-letter topic.
    """

    def __init__(self, client: dict[str, str], topic: str) -> None:
        self.topic = topic
        self._client = client
        self._producer: Producer | None = None

    def open(self) -> None:
        """Makes sure the topic exists and makes the producer (blocking).

        Raises:
            KafkaException: the cluster does not answer or refuses the topic.
        """
        create_topic_if_missing(self._client, self.topic)
        self._producer = Producer({**self._client, "enable.idempotence": True, "acks": "all"})

    def poll(self) -> None:
        """Serves delivery reports."""
        if self._producer is not None:
            self._producer.poll(0)

    def close(self) -> None:
        """Waits a little for what is outstanding."""
        if self._producer is not None:
            self._producer.flush(5)

    async def send(self, msg: Message, headers: Headers) -> None:
        """Puts ``msg`` (key and value as they came) in the topic with ``headers``.

        Raises:
            KafkaException: Kafka did not take it.
        """
        if self._producer is None:
            self.open()
        assert self._producer is not None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def delivered(err: KafkaError | None, _msg: object) -> None:
            loop.call_soon_threadsafe(settle, done, err)

        while True:
            try:
                self._producer.produce(
                    self.topic,
                    key=msg.key(),
                    value=msg.value(),
                    headers=headers,
                    on_delivery=delivered,
                )
                break
            except BufferError:
                self._producer.poll(0)
                await asyncio.sleep(0.01)
        await done

    def send_now(self, msg: Message, headers: Headers, timeout: float = 15) -> bool:
        """:meth:`send` for a thread without an event loop; whether Kafka took it."""
        if self._producer is None:
            self.open()
        assert self._producer is not None
        self._producer.produce(self.topic, key=msg.key(), value=msg.value(), headers=headers)
        return self._producer.flush(timeout) == 0
