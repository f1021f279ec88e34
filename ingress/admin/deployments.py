"""Registering deployments: endpoints of Restate's SDKs whose services Perdure runs.

``POST /deployments {"uri": ...}`` (Restate's admin contract) asks the endpoint's discovery
(``GET {uri}/discover``), checks what it answers, and only then writes the registry: one entry
per service, naming the deployment, then the deployment's own record (engine/deployments.py).
Any problem found before the writes (an endpoint that does not answer, one that is not a Restate
SDK, a protocol range Perdure does not speak, a service that Perdure's workers host) is a 400 or
409 with the reason, and nothing is written.

Decided here: the endpoint is asked over HTTP/2 without upgrade first (the TypeScript SDK serves
only that), then over HTTP/1.1; the deployment records which one answered. Registering the same
endpoint with the same services again is the same deployment (200, unchanged); a changed one is a
new deployment that its services move to, while invocations that started on the old one stay on
it. Removing a deployment drops the services that still point at it from the registry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from perdure.engine.cluster import ClusterNames
from perdure.engine.deployments import Deployment, RetrySettings, deployment_id, remote_deployment
from perdure.ingress.app import Ingress
from perdure.ingress.errors import IngressError
from perdure.process.kafka_settings import producer_settings
from perdure.process.tables import ServiceRegistry

log = logging.getLogger("perdure.admin")

MANIFEST_TYPES = [f"application/vnd.restate.endpointmanifest.v{v}+json" for v in (4, 3, 2)]
"""The discovery versions asked for, newest first (all carry what Perdure reads)."""
PROTOCOL_RANGE = (5, 6)
"""The service protocol versions Perdure speaks (partitions/remote/wire.py)."""
DISCOVERY_TIMEOUT_S = 10.0

_SERVICE_KINDS = {"SERVICE": "service", "VIRTUAL_OBJECT": "object", "WORKFLOW": "workflow"}
_HANDLER_KINDS = {"EXCLUSIVE": "exclusive", "SHARED": "shared", "WORKFLOW": "workflow"}


async def discover(uri: str) -> tuple[str, dict[str, Any]]:
    """Asks ``uri`` for its manifest; returns the HTTP version that answered and the manifest.

    Raises:
        IngressError: 400 with what went wrong.
    """
    if not uri.startswith(("http://", "https://")):
        raise IngressError(400, f"uri must be an http:// or https:// URL, not {uri!r}")
    url = uri.rstrip("/") + "/discover"
    headers = {"accept": ", ".join(MANIFEST_TYPES)}
    errors: list[str] = []
    for http in ("2", "1.1"):
        h2 = http == "2"
        try:
            async with httpx.AsyncClient(
                http1=not h2, http2=h2, timeout=DISCOVERY_TIMEOUT_S
            ) as client:
                r = await client.get(url, headers=headers)
        except httpx.ConnectError as err:
            raise IngressError(400, f"cannot reach {url}: {err or type(err).__name__}") from None
        except httpx.HTTPError as err:
            errors.append(f"HTTP/{http}: {type(err).__name__} {err}".strip())
            continue
        return http, _manifest(url, r)
    raise IngressError(400, f"{url} did not answer over HTTP/2 or HTTP/1.1: {'; '.join(errors)}")


def _manifest(url: str, r: httpx.Response) -> dict[str, Any]:
    if r.status_code == 415:
        raise IngressError(
            400,
            f"{url} refused every discovery version Perdure asks for "
            f"({', '.join(MANIFEST_TYPES)}): {r.text[:200]}",
        )
    if r.status_code != 200:
        raise IngressError(
            400, f"{url} is not a Restate endpoint: it answered {r.status_code} {r.text[:200]!r}"
        )
    try:
        manifest = r.json()
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("services"), list):
        raise IngressError(
            400,
            f"{url} is not a Restate endpoint: its answer is not a service manifest "
            f"({r.headers.get('content-type', 'no content type')}: {r.text[:120]!r})",
        )
    low, high = manifest.get("minProtocolVersion"), manifest.get("maxProtocolVersion")
    if not isinstance(low, int) or not isinstance(high, int):
        raise IngressError(400, f"{url}: the manifest gives no protocol versions")
    if high < PROTOCOL_RANGE[0] or low > PROTOCOL_RANGE[1]:
        raise IngressError(
            400,
            f"{url} speaks service protocol V{low} to V{high}; Perdure speaks "
            f"V{PROTOCOL_RANGE[0]} to V{PROTOCOL_RANGE[1]}",
        )
    return manifest


def registry_entries(manifest: dict[str, Any], dep: Deployment) -> list[dict[str, Any]]:
    """The registry entry of each service in ``manifest`` (the ingress routes by them)."""
    entries = []
    for svc in manifest["services"]:
        kind = _SERVICE_KINDS.get(svc.get("ty", ""))
        if kind is None or not isinstance(svc.get("name"), str):
            raise IngressError(400, f"the manifest has a service Perdure cannot read: {svc!r}")
        handlers = {}
        for h in svc.get("handlers", []):
            handler_kind = "" if kind == "service" else _HANDLER_KINDS.get(h.get("ty"), "exclusive")
            handlers[h["name"]] = {
                "kind": handler_kind,
                "input": (h.get("input") or {}).get("jsonSchema", {}),
                "output": (h.get("output") or {}).get("jsonSchema", {}),
                "doc": h.get("documentation", ""),
                "raw_input": False,
                "subscriptions": [],
            }
        entries.append(
            {
                "name": svc["name"],
                "kind": kind,
                "handlers": handlers,
                "deployment": json.loads(dep.to_json()),
            }
        )
    return entries


def retry_policies(uri: str, manifest: dict[str, Any]) -> tuple[tuple[str, RetrySettings], ...]:
    """The retry policies the manifest sets, by ``service`` and ``service/handler``.

    Raises:
        IngressError: 400, a retry field Perdure cannot read (named).
    """
    found: list[tuple[str, RetrySettings]] = []
    try:
        for svc in manifest["services"]:
            name = str(svc.get("name"))
            places = [(name, svc)] + [
                (f"{name}/{h.get('name')}", h) for h in svc.get("handlers", [])
            ]
            for where, fields in places:
                settings = RetrySettings.from_manifest(fields, where)
                if settings is not None:
                    found.append((where, settings))
    except ValueError as err:
        raise IngressError(400, f"{uri}: {err}") from None
    return tuple(found)


class Deployments:
    """Registers, lists and removes deployments, on the registry topic the admin reads."""

    def __init__(self, bootstrap: str, names: ClusterNames, registry: ServiceRegistry) -> None:
        self._producer = Producer(producer_settings(bootstrap))
        self._topic = names.registry_topic
        self._registry = registry
        self._lock = asyncio.Lock()

    def all(self) -> list[Deployment]:
        return sorted(self._registry.deployments.values(), key=lambda d: d.created_ms)

    def get(self, deployment: str) -> Deployment:
        found = self._registry.deployments.get(deployment)
        if found is None:
            raise IngressError(404, f"deployment {deployment!r} not found")
        return found

    async def register(self, body: Any) -> tuple[Deployment, bool]:
        """Registers the endpoint ``body["uri"]``; returns it and whether it is new.

        Raises:
            IngressError: 400 (the endpoint), 409 (a service hosted by workers), 503 (Kafka).
        """
        if not isinstance(body, dict) or not isinstance(body.get("uri"), str):
            raise IngressError(400, 'the body must be a JSON object {"uri": "http://host:port"}')
        uri = body["uri"].rstrip("/")
        force = bool(body.get("force", False))
        http, manifest = await discover(uri)
        dep_id = deployment_id(uri, manifest)
        async with self._lock:
            existing = self._registry.deployments.get(dep_id)
            if existing is not None:
                return existing, False
            services = tuple(s.get("name", "") for s in manifest["services"])
            now_ms = int(time.time() * 1000)
            bidi = http == "2" and manifest.get("protocolMode") == "BIDI_STREAM"
            mode = "bidi" if bidi else "request_response"
            retry = retry_policies(uri, manifest)
            dep = Deployment(dep_id, uri, http, PROTOCOL_RANGE[1], services, now_ms, mode, retry)
            entries = registry_entries(manifest, dep)
            for name in services:
                current = self._registry.services.get(name)
                if current is not None and remote_deployment(current) is None and not force:
                    raise IngressError(
                        409,
                        f"service {name!r} is hosted by Perdure workers ({current.get('worker')}); "
                        'register with "force": true to serve it from this deployment instead',
                    )
            records: list[tuple[str, bytes | None]] = [
                (e["name"], json.dumps(e).encode()) for e in entries
            ]
            records.append((dep.key, dep.to_json()))
            await asyncio.to_thread(self._write, records)
        log.info("deployment %s registered: %s serving %s", dep.id, uri, ", ".join(services))
        return dep, True

    async def remove(self, deployment: str) -> Deployment:
        """Removes a deployment and the registry entries of services that still point at it."""
        async with self._lock:
            dep = self.get(deployment)
            records: list[tuple[str, bytes | None]] = []
            for name, entry in list(self._registry.services.items()):
                current = remote_deployment(entry)
                if current is not None and current.id == dep.id:
                    records.append((name, None))
            records.append((dep.key, None))
            await asyncio.to_thread(self._write, records)
        log.info("deployment %s removed", dep.id)
        return dep

    def _write(self, records: list[tuple[str, bytes | None]], timeout: float = 15) -> None:
        """Writes the records in order and waits until this process's registry read them."""
        result: list[Message | KafkaError] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            result.append(err if err is not None else msg)

        try:
            for key, value in records:
                self._producer.produce(
                    self._topic, key=key.encode(), value=value, on_delivery=delivered
                )
        except (KafkaException, BufferError) as err:
            raise IngressError(503, f"Kafka cannot take the registration: {err}") from err
        self._producer.flush(timeout)
        failed = [r for r in result if isinstance(r, KafkaError)]
        if failed or len(result) < len(records):
            why = failed[0] if failed else "no answer in time"
            raise IngressError(503, f"Kafka did not store the registration: {why}")
        offset = max(m.offset() or 0 for m in result if isinstance(m, Message))
        if not self._registry.wait_applied(offset, timeout):
            raise IngressError(503, "the registration was stored but not read back in time")


def describe(dep: Deployment, registry: ServiceRegistry) -> dict[str, Any]:
    """A deployment as the API shows it (Restate's field names where there are some)."""
    live = []
    for name in dep.services:
        current = remote_deployment(registry.services.get(name) or {})
        live.append({"name": name, "current": current is not None and current.id == dep.id})
    return {
        "id": dep.id,
        "uri": dep.uri,
        "http_version": dep.http,
        "protocol_version": dep.protocol,
        "mode": dep.mode,
        "created_at_ms": dep.created_ms,
        "services": live,
        "retry_policies": {name: policy.to_json() for name, policy in dep.retry},
    }


def register_deployments(app: FastAPI, core: Ingress, bootstrap: str, names: ClusterNames) -> None:
    """The admin API's ``/deployments`` routes (Restate's contract)."""
    made: list[Deployments] = []

    def deployments() -> tuple[Deployments, ServiceRegistry]:
        registry = core.registry
        if registry is None or not core.ready:
            raise IngressError(503, "the service registry is loading")
        if not isinstance(registry, ServiceRegistry):
            raise IngressError(501, "deployments need Kafka's registry (not the embedded log)")
        if not made:
            made.append(Deployments(bootstrap, names, registry))
        return made[0], registry

    @app.post("/deployments", status_code=201)
    async def register(request: Request) -> JSONResponse:
        """Registers a Restate SDK endpoint: its services are then called like any other."""
        try:
            body = await request.json()
        except ValueError:
            raise IngressError(400, "the body is not valid JSON") from None
        table, registry = deployments()
        dep, new = await table.register(body)
        return JSONResponse(describe(dep, registry), status_code=201 if new else 200)

    @app.get("/deployments")
    async def list_deployments() -> dict[str, Any]:
        """Every registered deployment, oldest first."""
        table, registry = deployments()
        return {"deployments": [describe(d, registry) for d in table.all()]}

    @app.get("/deployments/{deployment_id}")
    async def get_deployment(deployment_id: str) -> dict[str, Any]:
        """One deployment."""
        table, registry = deployments()
        return describe(table.get(deployment_id), registry)

    @app.delete("/deployments/{deployment_id}", status_code=202)
    async def remove(deployment_id: str) -> Response:
        """Removes a deployment; invocations already running on it go on calling its URI."""
        table, _ = deployments()
        await table.remove(deployment_id)
        return Response(status_code=202)
