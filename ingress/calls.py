"""Calls to handlers (``POST /{service}/[{key}/]{handler}[/send]``), and their fast path.

A call is the ingress's hot path. Served through FastAPI's router it paid for the framework on
every request: matching ~20 routes in turn, solving the endpoint's dependencies, validating its
path parameter, and a middleware layer per feature, in all about as much CPU as the call's own
work (py-spy on the ingress under ``bench.run`` noop at concurrency 64: 44 % of the event loop
thread between uvicorn and the endpoint). :class:`CallFastPath`, an ASGI middleware, serves
calls directly; every other request (``/restate/...``, ``/health``, the docs, other methods)
goes on to FastAPI. Both paths run :func:`serve_call`, so they answer alike.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from perdure.engine.records import ResponseStatus
from perdure.ingress.answers import (
    ID_HEADER,
    StillRunning,
    answer_of,
    error_answer,
    still_running_answer,
    unexpected_answer,
)
from perdure.ingress.bodies import check_json, read_body
from perdure.ingress.config import IngressSettings
from perdure.ingress.errors import IngressError
from perdure.ingress.routing import parse_delay, split_path

if TYPE_CHECKING:
    from perdure.ingress.app import Ingress

TARGET_KEY = "perdure.target"
"""Where serve_call leaves the (service, handler) it routed to, for the metrics."""

_FORWARDED_SKIP = {"host", "connection", "content-length", "idempotency-key", "accept-encoding"}


async def serve_call(ingress: Ingress, settings: IngressSettings, request: Request) -> Response:
    """Appends the call's invocation and answers with its outcome (or 202 for a send).

    Raises:
        IngressError: the answer is an error (unknown handler, bad body, Kafka down, ...).
    """
    where = ingress.route(split_path(request.scope.get("raw_path") or request.url.path.encode()))
    request.scope[TARGET_KEY] = (where.target.service, where.target.handler)
    delay_ms = 0
    if request.scope.get("query_string") and "delay" in request.query_params:
        if not where.send:
            raise IngressError(400, "?delay is only for /send: a call cannot wait to start")
        delay_ms = parse_delay(request.query_params["delay"])
    body = await read_body(request, settings.max_body_bytes)
    if body.strip() and not where.raw_input:
        check_json(body, "the request body")
    headers = tuple((k, v) for k, v in request.headers.items() if k.lower() not in _FORWARDED_SKIP)
    invocation_id, response = await ingress.invoke(
        where,
        body,
        request.headers.get("idempotency-key"),
        headers,
        request.is_disconnected,
        delay_ms,
    )
    if where.send:
        status = "Accepted"
        if response is not None and response.status is ResponseStatus.PREVIOUSLY_ACCEPTED:
            status = "PreviouslyAccepted"
        return JSONResponse(
            {"invocationId": invocation_id, "status": status},
            status_code=202,
            headers={ID_HEADER: invocation_id},
        )
    assert response is not None
    return answer_of(response, invocation_id)


class CallFastPath:
    """ASGI middleware: serves ``POST`` calls itself, hands everything else to ``app``.

    Args:
        app: the FastAPI app (``/restate/...`` paths, health, docs, errors of other methods).
        ingress: the replica's state.
        settings: its settings.
    """

    def __init__(self, app: ASGIApp, ingress: Ingress, settings: IngressSettings) -> None:
        self.app = app
        self.ingress = ingress
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"].startswith("/restate/")
        ):
            await self.app(scope, receive, send)
            return
        response: Response
        metrics = self.ingress.metrics
        started = time.perf_counter()
        metrics.in_flight.inc()
        try:
            response = await serve_call(self.ingress, self.settings, Request(scope, receive))
        except StillRunning as err:
            response = still_running_answer(err)
        except IngressError as err:
            response = error_answer(err.status, err.message)
        except Exception as err:
            response = unexpected_answer(err)
        finally:
            metrics.in_flight.dec()
        service, handler = scope.get(TARGET_KEY, ("", ""))
        metrics.observe(service, handler, response.status_code, time.perf_counter() - started)
        await response(scope, receive, send)
