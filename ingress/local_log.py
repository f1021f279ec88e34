"""The ingress over a log in its own process (``perdure dev --embedded``), not Kafka.

The ingress needs three things of a log: append a record (durably, before it answers), hand it
the responses to its requests, and the services it may route to. :class:`LocalLog` is that
interface; partitions/embedded.py provides it, and the ingress takes it without importing the
workers' package (``Ingress.use_local_log``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from perdure.engine.deployments import Deployment
from perdure.engine.records import Envelope, Response


class LocalLog(Protocol):
    """A log (and its one partition's leader) in this process."""

    services: dict[str, dict[str, Any]]
    """The services its handlers serve, as workers publish them to the registry."""

    async def append(self, envelope: Envelope) -> None:
        """Appends a record; returns once it is durable."""
        ...

    def on_response(self, deliver: Callable[[Response], None]) -> None:
        """Hands every response for the ingress to ``deliver``."""
        ...

    async def start(self) -> None:
        """Reads the log it has (on the ingress's event loop); it leads from :meth:`lead`."""
        ...

    def lead(self) -> None:
        """Runs its partition from now on (once the ingress takes calls)."""
        ...

    def problem(self) -> str | None:
        """Why its partition cannot go on, in words (None: it goes on): readiness fails."""
        ...

    async def stop(self) -> None: ...


class LocalProducer:
    """What the ingress appends through: every partition is the local log's one partition."""

    def __init__(self, local: LocalLog) -> None:
        self._local = local

    async def append(self, _partition: int, _key: bytes | None, envelope: Envelope) -> None:
        await self._local.append(envelope)

    def close(self) -> None:
        pass


class LocalRegistry:
    """The services of the local log's endpoint: known from the start, never changing."""

    def __init__(self, local: LocalLog) -> None:
        self.services = dict(local.services)
        self.deployments: dict[str, Deployment] = {}
        self.ready = asyncio.Event()
        self.ready.set()

    def close(self) -> None:
        pass
