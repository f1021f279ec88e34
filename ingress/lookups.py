"""Finding an invocation and its outcome by what the caller knows: Restate's lookup paths.

``GET /restate/attach/{id}`` and ``/restate/output/{id}`` (Restate 1.7), ``POST
/restate/attach|output|lookup`` with a JSON ``target`` (a workflow, an idempotent invocation or
an invocation id), and the legacy ``GET /restate/invocation/{service}/[{key}/]{handler}/
{idempotency key}/attach|output``. An invocation's id follows from the target alone (workflow
ids and idempotency keys name their invocation), so none of these needs a lookup table.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from perdure.engine.ids import InvocationId, workflow_run_id
from perdure.engine.scopes import scoped_key
from perdure.ingress.answers import answer_of
from perdure.ingress.errors import IngressError

if TYPE_CHECKING:
    from perdure.ingress.app import Ingress


def invocation_of(ingress: Ingress, target: dict[str, Any]) -> str:
    """The invocation id a lookup body names; raises :class:`IngressError` (400) otherwise."""
    kind = target.get("target")
    try:
        if kind == "invocation":
            invocation_id = str(target["invocationId"])
            InvocationId.parse(invocation_id)
            return invocation_id
        scope = target.get("scope")
        if kind == "workflow":
            key = scoped_key(scope, str(target["workflowKey"]))
            return str(workflow_run_id(str(target["workflowName"]), key))
        if kind == "idempotentInvocation":
            return idempotent_id(
                ingress,
                str(target["service"]),
                target.get("key"),
                str(target["handler"]),
                str(target["idempotencyKey"]),
                scope,
            )
    except KeyError as err:
        raise IngressError(400, f"the lookup target lacks {err.args[0]!r}") from None
    except ValueError as err:
        raise IngressError(400, str(err)) from None
    raise IngressError(400, "target must be one of invocation, workflow, idempotentInvocation")


def idempotent_id(
    ingress: Ingress,
    service: str,
    key: str | None,
    handler: str,
    idempotency_key: str,
    scope: str | None = None,
) -> str:
    """The id of the invocation of ``service/[key/]handler`` started with ``idempotency_key``."""
    segments = [service, handler] if key is None else [service, key, handler]
    prefix = ["restate", "call"] if scope is None else ["restate", "scope", scope, "call"]
    where = ingress.route([*prefix, *segments])
    return str(where.invocation_id(idempotency_key))


def register_lookups(app: FastAPI, ingress: Ingress) -> None:
    """Adds the lookup paths to the ingress's app."""

    @app.get("/restate/attach/{invocation_id}")
    async def attach_by_id(invocation_id: str, request: Request) -> Response:
        response = await ingress.attach(invocation_id, True, request.is_disconnected)
        return answer_of(response, invocation_id)

    @app.get("/restate/output/{invocation_id}")
    async def output_by_id(invocation_id: str) -> Response:
        return answer_of(await ingress.attach(invocation_id, block=False), invocation_id)

    @app.post("/restate/lookup")
    async def lookup(request: Request) -> Response:
        invocation_id = invocation_of(ingress, await _target(request))
        return JSONResponse({"invocationId": invocation_id})

    @app.post("/restate/attach")
    async def attach_target(request: Request) -> Response:
        invocation_id = invocation_of(ingress, await _target(request))
        response = await ingress.attach(invocation_id, True, request.is_disconnected)
        return answer_of(response, invocation_id)

    @app.post("/restate/output")
    async def output_target(request: Request) -> Response:
        invocation_id = invocation_of(ingress, await _target(request))
        return answer_of(await ingress.attach(invocation_id, block=False), invocation_id)

    @app.get("/restate/invocation/{service}/{handler}/{idempotency_key}/{verb}")
    async def idempotent_service(
        service: str, handler: str, idempotency_key: str, verb: str, request: Request
    ) -> Response:
        return await _idempotent(request, service, None, handler, idempotency_key, verb)

    @app.get("/restate/invocation/{service}/{key}/{handler}/{idempotency_key}/{verb}")
    async def idempotent_keyed(
        service: str, key: str, handler: str, idempotency_key: str, verb: str, request: Request
    ) -> Response:
        return await _idempotent(request, service, key, handler, idempotency_key, verb)

    async def _idempotent(
        request: Request,
        service: str,
        key: str | None,
        handler: str,
        idempotency_key: str,
        verb: str,
    ) -> Response:
        if verb not in ("attach", "output"):
            raise IngressError(404, f"no such path: {request.url.path}")
        invocation_id = idempotent_id(ingress, service, key, handler, idempotency_key)
        block = verb == "attach"
        gone = request.is_disconnected if block else None
        return answer_of(await ingress.attach(invocation_id, block, gone), invocation_id)


async def _target(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        raise IngressError(400, "the body must be a JSON lookup target") from None
    if not isinstance(body, dict):
        raise IngressError(400, "the body must be a JSON object with a target")
    return body
