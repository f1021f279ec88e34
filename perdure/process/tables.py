"""Kafka topics read into memory on a thread of their own: compacted tables and the registry.

Both workers and the ingress follow the service registry (services, and the deployments of
Restate SDK endpoints): one reader, :class:`ServiceRegistry`, serves both.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from perdure.engine.deployments import KEY_PREFIX as DEPLOYMENT_KEY_PREFIX
from perdure.engine.deployments import Deployment, is_deployment_key
from perdure.process.client_logs import CLIENT_LOGGER
from perdure.process.kafka_settings import client_settings

log = logging.getLogger("perdure.registry")


def log_end(consumer: Consumer, tp: TopicPartition, timeout: float = 30) -> int:
    """The end offset of a partition, waiting out a new topic's leader election."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return int(consumer.get_watermark_offsets(tp, timeout=5, cached=False)[1])
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class TopicReader:
    """A consumer on its own thread, with no group, over fixed partitions."""

    def __init__(self, bootstrap: str, name: str) -> None:
        self._consumer = Consumer(
            {
                **client_settings(bootstrap),
                "group.id": f"perdure-{name}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
                "logger": CLIENT_LOGGER,
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            first = self._consumer.poll(0.1)  # returns on the first record, unlike consume()
            batch = [] if first is None else [first, *self._consumer.consume(500, 0)]
            for msg in batch:
                if msg.error() is None:
                    self.handle(msg.key(), msg.value(), msg.offset() or 0)
            self.idle()

    def handle(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        raise NotImplementedError

    def idle(self) -> None:
        """Called after every poll."""

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


class CompactedTable(TopicReader):
    """A compacted one-partition topic read from its start into memory, then followed.

    ``ready`` is set once the reader caught up with the end it found at start;
    :meth:`wait_applied` waits until it has read past a given offset (a write of this process).
    """

    def __init__(self, bootstrap: str, topic: str, name: str) -> None:
        super().__init__(bootstrap, name)
        tp = TopicPartition(topic, 0)
        self._end = log_end(self._consumer, tp)
        self.ready = threading.Event()
        self._position = 0
        self._moved = threading.Condition()
        tp.offset = 0
        self._consumer.assign([tp])
        if self._end == 0:
            self.ready.set()
        self._thread.start()

    def handle(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        if key is not None:
            self.apply(key, value)
        with self._moved:
            self._position = offset + 1
            self._moved.notify_all()

    def apply(self, key: bytes, value: bytes | None) -> None:
        """One entry: ``value`` None is a tombstone."""
        raise NotImplementedError

    def idle(self) -> None:
        if not self.ready.is_set() and self._position >= self._end:
            self.ready.set()

    def wait_applied(self, offset: int, timeout: float) -> bool:
        """Waits until the entry at ``offset`` has been applied; False after ``timeout``."""
        with self._moved:
            return self._moved.wait_for(lambda: self._position > offset, timeout)


class ServiceRegistry(CompactedTable):
    """The services workers host, read from the compacted registry topic."""

    def __init__(self, bootstrap: str, topic: str, name: str = "ingress-registry") -> None:
        self.services: dict[str, dict[str, Any]] = {}
        self.deployments: dict[str, Deployment] = {}
        """Registered deployments (engine/deployments.py), by id; kept apart from services."""
        super().__init__(bootstrap, topic, name)

    def apply(self, key: bytes, value: bytes | None) -> None:
        name = key.decode(errors="replace")
        if is_deployment_key(name):
            self._apply_deployment(name, value)
            return
        if value is None:
            self.services.pop(name, None)
            return
        try:
            self.services[name] = json.loads(value)
        except ValueError:
            log.warning("registry: unreadable entry for %r", key)

    def _apply_deployment(self, key: str, value: bytes | None) -> None:
        dep_id = key[len(DEPLOYMENT_KEY_PREFIX) :]
        if value is None:
            self.deployments.pop(dep_id, None)
            return
        try:
            self.deployments[dep_id] = Deployment.from_json(value)
        except ValueError:
            log.warning("registry: unreadable deployment %r", key)
