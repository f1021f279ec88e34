"""The ingress's OpenAPI document: one path per registered handler, with its JSON schemas.

Workers publish each handler's input and output schema (from its pydantic, dataclass or typed
annotations) in the service registry; the document is rebuilt from the registry when it
changes, so ``/docs`` always shows what the cluster serves now.
"""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
    "required": ["code", "message"],
}


def document(services: dict[str, dict[str, Any]], base: dict[str, Any]) -> dict[str, Any]:
    """``base`` (FastAPI's document of the fixed routes) plus one path per handler."""
    doc = dict(base)
    paths: dict[str, Any] = {}
    shared: dict[str, Any] = {}
    for name, service in sorted(services.items()):
        kind = service.get("kind", "service")
        for handler, spec in sorted(service.get("handlers", {}).items()):
            for part in ("input", "output"):
                if isinstance(spec.get(part), dict):
                    spec = {**spec, part: _hoist(spec[part], shared)}
            path = f"/{name}/{handler}" if kind == "service" else f"/{name}/{{key}}/{handler}"
            paths[path] = {"post": _operation(name, kind, handler, spec, send=False)}
            paths[path + "/send"] = {"post": _operation(name, kind, handler, spec, send=True)}
    doc["paths"] = {**paths, **base.get("paths", {})}
    components = dict(doc.get("components", {}))
    components["schemas"] = {**components.get("schemas", {}), **shared, "Error": _ERROR}
    doc["components"] = components
    return doc


def _operation(
    service: str, kind: str, handler: str, spec: dict[str, Any], send: bool
) -> dict[str, Any]:
    errors = {"$ref": "#/components/schemas/Error"}
    op: dict[str, Any] = {
        "tags": [service],
        "summary": f"{'Send to' if send else 'Call'} {service}/{handler}",
        "description": spec.get("doc") or "",
        "operationId": f"{service}-{handler}{'-send' if send else ''}",
        "parameters": [
            {
                "name": "idempotency-key",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            }
        ],
        "responses": {
            "400": {"description": "a body that does not validate", "content": _json(errors)},
            "404": {"description": "unknown service or handler", "content": _json(errors)},
        },
    }
    if kind != "service":
        op["parameters"].insert(
            0, {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
        )
    if send:
        op["parameters"].append(
            {"name": "delay", "in": "query", "required": False, "schema": {"type": "string"}}
        )
    if spec.get("input") is not None:
        op["requestBody"] = {"required": False, "content": _json(spec["input"])}
    if send:
        accepted = {
            "type": "object",
            "properties": {"invocationId": {"type": "string"}, "status": {"type": "string"}},
        }
        op["responses"]["202"] = {"description": "accepted", "content": _json(accepted)}
    else:
        op["responses"]["200"] = {
            "description": "the result",
            "content": _json(spec.get("output") or {}),
        }
    return op


def _hoist(schema: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    """Moves a schema's ``$defs`` (models it refers to) into the document's components."""
    defs = schema.get("$defs")
    if not defs:
        return schema
    shared.update(defs)
    return {k: v for k, v in schema.items() if k != "$defs"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}
