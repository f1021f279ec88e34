"""The subscriptions of a cluster: the compacted ``<cluster>.subscriptions`` topic, in memory.

Writes go to Kafka first and return once this process has read them back, so a reader never
sees its own write undone by an older entry it had not read yet.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from perdure.engine import subscriptions
from perdure.engine.cluster import ClusterNames
from perdure.engine.subscriptions import InvalidSubscription, Subscription
from perdure.ingress.errors import IngressError
from perdure.process.kafka_settings import producer_settings
from perdure.process.tables import CompactedTable

log = logging.getLogger("perdure.admin")


class SubscriptionTable(CompactedTable):
    """Every subscription of the cluster, by id."""

    def __init__(self, bootstrap: str, names: ClusterNames) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        self._lock = threading.Lock()
        self._producer = Producer(producer_settings(bootstrap))
        self._topic = names.subscriptions_topic
        super().__init__(bootstrap, names.subscriptions_topic, "admin-subscriptions")

    def apply(self, key: bytes, value: bytes | None) -> None:
        with self._lock:
            if value is None:
                self.subscriptions.pop(key.decode(), None)
                return
            try:
                sub = subscriptions.decode(value)
            except InvalidSubscription as err:
                log.warning("subscriptions: entry %r skipped: %s", key, err)
                return
            self.subscriptions[sub.id] = sub

    def all(self) -> list[Subscription]:
        """A copy of the table, ordered by id."""
        with self._lock:
            return sorted(self.subscriptions.values(), key=lambda s: s.id)

    def get(self, subscription_id: str) -> Subscription | None:
        with self._lock:
            return self.subscriptions.get(subscription_id)

    def put(self, sub: Subscription, timeout: float = 15) -> None:
        """Stores ``sub``; raises :class:`IngressError` (503) if Kafka does not take it."""
        self._write(sub.id, subscriptions.encode(sub), timeout)

    def delete(self, subscription_id: str, timeout: float = 15) -> None:
        """Deletes a subscription (a tombstone); raises :class:`IngressError` (503)."""
        self._write(subscription_id, None, timeout)

    def _write(self, key: str, value: bytes | None, timeout: float) -> None:
        result: list[Message | KafkaError] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            result.append(err if err is not None else msg)

        try:
            self._producer.produce(
                self._topic, key=key.encode(), value=value, on_delivery=delivered
            )
        except (KafkaException, BufferError) as err:
            raise IngressError(503, f"Kafka cannot take the subscription: {err}") from err
        self._producer.flush(timeout)
        if not result or isinstance(result[0], KafkaError):
            why = result[0] if result else "no answer in time"
            raise IngressError(503, f"Kafka did not store the subscription: {why}")
        offset = result[0].offset()
        if offset is None or not self.wait_applied(offset, timeout):
            raise IngressError(503, "the subscription was stored but not read back in time")

    def close(self) -> None:
        super().close()
        self._producer.flush(5)
