"""Endpoint: the set of services a worker hosts."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from perdure.sdk import serde
from perdure.sdk.errors import HandlerDefinitionError
from perdure.sdk.service import HandlerDef, ServiceDefinition


class Endpoint:
    """Collects services for ``perdure worker MODULE:APP``.

    Args:
        services: the services to host; names must be unique.
    """

    def __init__(self, services: Iterable[ServiceDefinition]) -> None:
        self.services: dict[str, ServiceDefinition] = {}
        for svc in services:
            if svc.name in self.services:
                raise HandlerDefinitionError(f"two services are named {svc.name!r}")
            self.services[svc.name] = svc

    def handler(self, service: str, handler: str) -> HandlerDef | None:
        """The handler for a target, or None if this endpoint does not host it."""
        svc = self.services.get(service)
        return None if svc is None else svc.handlers.get(handler)

    def manifest(self) -> list[dict[str, Any]]:
        """What the service registry publishes: names, kinds, handler kinds and the JSON schemas
        of each handler's input and output (the ingress's OpenAPI document is made of them), and
        the Kafka topics each handler subscribes to (the admin process creates those)."""
        return [
            {
                "name": svc.name,
                "kind": svc.kind.value,
                "handlers": {
                    h.name: {
                        "kind": h.kind,
                        "input": serde.json_schema(h.input_type) if h.takes_input else None,
                        "output": serde.json_schema(h.output_type),
                        "doc": inspect.getdoc(h.fn) or "",
                        "raw_input": h.raw_input,
                        "subscriptions": [
                            {"source": sub.source, "options": dict(sub.options)}
                            for sub in h.subscriptions
                        ],
                    }
                    for h in svc.handlers.values()
                },
            }
            for svc in self.services.values()
        ]
