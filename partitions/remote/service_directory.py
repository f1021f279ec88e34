"""ServiceDirectory: the worker's copy of the service registry, for services it does not host.

A worker runs the handlers of its own endpoint in process; the services of registered
deployments (engine/deployments.py) it runs over HTTP, and a handler of theirs that calls
another service needs that service's kind. Both come from the compacted registry topic, read
by the registry reader the ingress uses too (perdure/process/tables.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from perdure.engine.deployments import Deployment, remote_deployment
from perdure.engine.model import HandlerKind, ServiceKind
from perdure.process.tables import ServiceRegistry

log = logging.getLogger("perdure.directory")


class ServiceDirectory:
    """Service name to its registry entry, as the registry topic says now."""

    def __init__(self, bootstrap: str, topic: str, name: str = "worker-registry") -> None:
        self._registry = ServiceRegistry(bootstrap, topic, name)

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        """Service name to its registry entry."""
        return self._registry.services

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
        self._registry.close()
