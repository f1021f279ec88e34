"""Deployments: services served by an HTTP endpoint of Restate's SDKs, and how they are recorded.

A deployment is registered once (``POST /deployments``): the admin reads the endpoint's
discovery and writes, in one Kafka transaction on the compacted registry topic, the deployment's
record (key ``deployment/{id}``) and a registry entry for each of its services (key: the service
name, as for services workers host) that names the deployment. The ingress routes to those
services like to any other; a worker runs their invocations over HTTP.

The first journal entry of every remote invocation pins its deployment (:data:`PIN_ENTRY`, a
``run`` entry whose value is the deployment's record): a later registration of the same
services is a new deployment, and invocations that started on the old one keep running on it.

Byte formats (version 1, never changing meaning): the record is JSON
``{"v": 1, "id", "uri", "http", "protocol", "services", "created_ms", "mode"}`` (``mode`` added
later, optional: ``request_response`` when absent).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

RECORD_VERSION = 1
KEY_PREFIX = "deployment/"
"""Registry keys of deployment records; no service name can start so (``/`` is not allowed)."""
PIN_ENTRY = "restate:deployment"
"""The name of the journal entry that pins a remote invocation to its deployment."""
STATE_ENTRY = "restate:state"
"""A journal entry that only carries state changes (made before the handler suspended)."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """One registered endpoint.

    Attributes:
        id: ``dp_`` and a hash of the URI and the discovered manifest: the same endpoint
            registered twice is the same deployment; a changed one is a new deployment.
        uri: where its ``/discover`` and ``/invoke`` paths are.
        http: ``"2"`` (h2c, prior knowledge) or ``"1.1"``, as the endpoint answered.
        protocol: the service protocol version Perdure speaks with it.
        services: the service names it serves.
        created_ms: when it was registered (wall clock, ms).
        mode: ``"bidi"`` (one HTTP/2 stream per attempt; the endpoint's discovery says
            ``BIDI_STREAM``) or ``"request_response"`` (one request per step).
    """

    id: str
    uri: str
    http: str
    protocol: int
    services: tuple[str, ...]
    created_ms: int
    mode: str = "request_response"

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "v": RECORD_VERSION,
                "id": self.id,
                "uri": self.uri,
                "http": self.http,
                "protocol": self.protocol,
                "services": list(self.services),
                "created_ms": self.created_ms,
                "mode": self.mode,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes | str | dict[str, Any]) -> Deployment:
        """Reads a record; raises ``ValueError`` on one that is not."""
        d = data if isinstance(data, dict) else json.loads(data)
        try:
            return cls(
                id=str(d["id"]),
                uri=str(d["uri"]),
                http=str(d.get("http", "2")),
                protocol=int(d["protocol"]),
                services=tuple(str(s) for s in d.get("services", ())),
                created_ms=int(d.get("created_ms", 0)),
                mode=str(d.get("mode", "request_response")),
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a deployment record: {err}") from None

    @property
    def key(self) -> str:
        return KEY_PREFIX + self.id


def deployment_id(uri: str, manifest: dict[str, Any]) -> str:
    """The id of the endpoint at ``uri`` serving ``manifest`` (its discovery answer)."""
    digest = hashlib.sha256((uri + "\n" + json.dumps(manifest, sort_keys=True)).encode())
    return "dp_" + digest.hexdigest()[:20]


def is_deployment_key(key: str) -> bool:
    return key.startswith(KEY_PREFIX)


def remote_deployment(entry: dict[str, Any]) -> Deployment | None:
    """The deployment a registry entry's service runs on, or None for one workers host."""
    d = entry.get("deployment")
    if not isinstance(d, dict):
        return None
    try:
        return Deployment.from_json(d)
    except ValueError:
        return None
