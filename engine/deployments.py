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
``{"v": 1, "id", "uri", "http", "protocol", "services", "created_ms", "mode", "retry"}`` (``mode``
and ``retry`` added later, optional: ``request_response`` and no policies when absent). ``retry``
maps ``service`` or ``service/handler`` to ``{"initial_ms", "max_ms", "factor", "attempts",
"on_max"}``, each optional.
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


_MANIFEST_RETRY = {
    "retryPolicyInitialInterval": "initial_ms",
    "retryPolicyMaxInterval": "max_ms",
    "retryPolicyExponentiationFactor": "factor",
    "retryPolicyMaxAttempts": "attempts",
    "retryPolicyOnMaxAttempts": "on_max",
}
ON_MAX_ATTEMPTS = ("KILL", "PAUSE")


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """A deployment's retry policy for a service or a handler, as its discovery gives it.

    A field left None takes the service's value, then Perdure's default (sdk ``RetryPolicy``).

    Attributes:
        initial_ms: the delay before the first retry.
        max_ms: the longest delay between two attempts.
        factor: how much each delay grows over the one before.
        attempts: attempts in all, the first included (Restate's ``maxAttempts``).
        on_max: ``"KILL"`` (the invocation fails) or ``"PAUSE"`` (it waits for an operator)
            once the last attempt failed.
    """

    initial_ms: int | None = None
    max_ms: int | None = None
    factor: float | None = None
    attempts: int | None = None
    on_max: str | None = None

    @classmethod
    def from_manifest(cls, d: dict[str, Any], where: str | None = None) -> RetrySettings | None:
        """The retry fields of a manifest's service or handler (``where``, for errors: its name
        by default); None if it sets none.

        Raises:
            ValueError: a field of the wrong type or out of range, named.
        """
        given = {
            ours: d[theirs] for theirs, ours in _MANIFEST_RETRY.items() if d.get(theirs) is not None
        }
        if not given:
            return None
        return cls.from_json(given, where=str(d.get("name", "")) if where is None else where)

    @classmethod
    def from_json(cls, d: dict[str, Any], where: str = "") -> RetrySettings:
        """Reads the record's form (and checks it, as :meth:`from_manifest`)."""
        out = cls(
            initial_ms=_number(d, "initial_ms", int, 0, where),
            max_ms=_number(d, "max_ms", int, 0, where),
            factor=_number(d, "factor", float, 1, where),
            attempts=_number(d, "attempts", int, 1, where),
            on_max=None if d.get("on_max") is None else str(d["on_max"]).upper(),
        )
        if out.on_max is not None and out.on_max not in ON_MAX_ATTEMPTS:
            raise ValueError(
                f"{where}: retryPolicyOnMaxAttempts must be KILL or PAUSE, not {d['on_max']!r}"
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            k: getattr(self, k) for k in _MANIFEST_RETRY.values() if getattr(self, k) is not None
        }

    def over(self, base: RetrySettings) -> RetrySettings:
        """These settings, with ``base``'s where these set none (a handler's over its service's)."""
        merged = {
            name: getattr(base, name) if getattr(self, name) is None else getattr(self, name)
            for name in _MANIFEST_RETRY.values()
        }
        return RetrySettings(**merged)


def _number(d: dict[str, Any], name: str, kind: type, low: float, where: str) -> Any:
    value = d.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise ValueError(
            f"{where}: the retry policy's {name} must be a number >= {low}, not {value!r}"
        )
    return kind(value)


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
    retry: tuple[tuple[str, RetrySettings], ...] = ()

    def retry_for(self, service: str, handler: str) -> RetrySettings:
        """The retry policy the deployment sets for ``service/handler`` (fields may be None)."""
        given = dict(self.retry)
        mine = given.get(f"{service}/{handler}", RetrySettings())
        return mine.over(given.get(service, RetrySettings()))

    def to_json(self) -> bytes:
        retry = {"retry": {k: v.to_json() for k, v in self.retry}} if self.retry else {}
        return json.dumps(
            {
                **retry,
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
                retry=tuple(
                    (str(k), RetrySettings.from_json(v, k)) for k, v in d.get("retry", {}).items()
                ),
            )
        except (KeyError, TypeError, AttributeError) as err:
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
