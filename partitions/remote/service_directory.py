"""ServiceDirectory: the worker's copy of the service registry, for services it does not host.

A worker runs the handlers of its own endpoint in process; the services of registered
deployments (engine/deployments.py) it runs over HTTP, and a handler of theirs that calls
another service needs that service's kind. Both come from the compacted registry topic, read
from its start on a thread of its own and followed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from perdure.engine.client_logs import CLIENT_LOGGER
from perdure.engine.deployments import Deployment, is_deployment_key, remote_deployment
from perdure.engine.kafka_settings import client_settings
from perdure.engine.model import HandlerKind, ServiceKind

log = logging.getLogger("perdure.directory")


class ServiceDirectory:
    """Service name to its registry entry, as the registry topic says now."""

    def __init__(self, bootstrap: str, topic: str, name: str = "worker-registry") -> None:
        self.services: dict[str, dict[str, Any]] = {}
        self._consumer = Consumer(
            {
                **client_settings(bootstrap),
                "group.id": f"perdure-{name}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
                "logger": CLIENT_LOGGER,
            }
        )
        self._consumer.assign([TopicPartition(topic, 0, 0)])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._consumer.poll(0.1)
            raw = None if msg is None or msg.error() is not None else msg.key()
            if msg is None or raw is None:
                continue
            key = raw.decode(errors="replace")
            if is_deployment_key(key):
                continue
            value = msg.value()
            if value is None:
                self.services.pop(key, None)
                continue
            try:
                self.services[key] = json.loads(value)
            except ValueError:
                log.warning("registry: unreadable entry for %r", key)

    def deployment(self, service: str) -> Deployment | None:
        """The deployment that serves ``service`` now, or None (hosted by workers, or unknown)."""
        entry = self.services.get(service)
        return remote_deployment(entry) if entry is not None else None

    async def wait_deployment(self, service: str, timeout_s: float) -> Deployment | None:
        """:meth:`deployment`, waiting up to ``timeout_s`` for a registration not read yet."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            found = self.deployment(service)
            if found is not None or loop.time() >= deadline:
                return found
            await asyncio.sleep(0.1)

    def kinds(self, service: str, handler: str) -> tuple[ServiceKind, HandlerKind] | None:
        """The kind of ``service`` and of its ``handler``, or None if the registry has neither."""
        entry = self.services.get(service)
        if entry is None:
            return None
        h = entry.get("handlers", {}).get(handler)
        if h is None:
            return None
        try:
            service_kind = ServiceKind(entry.get("kind", "service"))
        except ValueError:
            return None
        if service_kind is ServiceKind.SERVICE:
            return service_kind, HandlerKind.SERVICE
        given = h.get("kind")
        if given in (HandlerKind.SHARED, HandlerKind.WORKFLOW):
            return service_kind, HandlerKind(given)
        return service_kind, HandlerKind.EXCLUSIVE

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()
