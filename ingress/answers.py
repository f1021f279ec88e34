"""The ingress's HTTP answers: a partition's response, an error, a call still running.

Errors are JSON ``{"code": N, "message": "..."}``; answers about an invocation carry its id in
``x-restate-id``, as Restate's do.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from perdure.engine.records import Response as LogResponse
from perdure.engine.records import ResponseStatus
from perdure.ingress.errors import IngressError

log = logging.getLogger("perdure.ingress")

ID_HEADER = "x-restate-id"
NOT_READY = 470
"""Restate's status for an output asked for before the invocation completed."""


def error_answer(status: int, message: str, invocation_id: str | None = None) -> JSONResponse:
    """An error in the ingress's one shape.

    A failure's code comes from a handler (``TerminalError(code)``) or a Restate SDK, and
    may be anything: one outside 400-599 is no error status (0, 1000 and 2**32-1 make no
    valid status line at all), so it is answered as 500 with the original code in the message.
    """
    if not 400 <= status <= 599:
        message = f"{message} (code {status})"
        status = 500
    headers = {ID_HEADER: invocation_id} if invocation_id else None
    return JSONResponse({"code": status, "message": message}, status_code=status, headers=headers)


class StillRunning(IngressError):
    """A call waited longer than ``call_timeout_s``: it is accepted and still running (202)."""

    def __init__(self, invocation_id: str) -> None:
        super().__init__(202, f"invocation {invocation_id} is still running")
        self.invocation_id = invocation_id


def still_running_answer(err: StillRunning) -> JSONResponse:
    """202 with the id to attach to later."""
    invocation_id = err.invocation_id
    return JSONResponse(
        {
            "invocationId": invocation_id,
            "status": "Accepted",
            "message": "still running; its result: "
            f"GET /restate/invocation/{invocation_id}/attach (or /output)",
        },
        status_code=202,
        headers={ID_HEADER: invocation_id},
    )


def unexpected_answer(err: Exception) -> JSONResponse:
    """A 500 for a bug in the ingress, logged with its traceback."""
    log.error("unexpected error: %r", err, exc_info=err)
    return error_answer(500, f"internal error in the ingress: {type(err).__name__}")


def answer_of(response: LogResponse, invocation_id: str) -> Response:
    """The HTTP answer to a partition's response about an invocation."""
    headers = {ID_HEADER: invocation_id}
    if response.status is ResponseStatus.OK:
        return Response(
            response.result or b"null",
            status_code=200,
            media_type="application/json",
            headers=headers,
        )
    if response.status is ResponseStatus.FAILED and response.failure is not None:
        return error_answer(response.failure.code, response.failure.message, invocation_id)
    if response.status is ResponseStatus.NOT_READY:
        return error_answer(NOT_READY, "the invocation has not completed yet", invocation_id)
    if response.status is ResponseStatus.NOT_FOUND:
        return error_answer(404, f"invocation {invocation_id} not found", invocation_id)
    return error_answer(500, f"unexpected answer {response.status.value}", invocation_id)


def install_error_handlers(app: FastAPI) -> None:
    """Every error of ``app`` in the one shape, the framework's own too (405, unknown route,
    bad parameters) and unexpected ones (500, logged)."""

    @app.exception_handler(IngressError)
    async def ingress_error(_request: Request, err: IngressError) -> JSONResponse:
        return error_answer(err.status, err.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, err: StarletteHTTPException) -> JSONResponse:
        response = error_answer(err.status_code, str(err.detail))
        for name, value in (err.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, err: Exception) -> JSONResponse:
        return unexpected_answer(err)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in err.errors()
        )
        return error_answer(400, f"bad request: {problems}")
