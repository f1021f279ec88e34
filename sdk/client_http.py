"""The ingress's HTTP contract as the Python client speaks it: the request for each operation,
and how an answer becomes a result or a :class:`~sdk.errors.TerminalError` (sdk/client.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from perdure.engine.ids import idempotent_uid, workflow_run_id
from perdure.engine.model import HandlerKind
from perdure.sdk import serde
from perdure.sdk.call_targets import check_key, invocation_id_for
from perdure.sdk.errors import CallTimeoutError, TerminalError
from perdure.sdk.service import HandlerDef

OutputT = TypeVar("OutputT")

NOT_READY = 470
"""The status of an output asked for while its invocation still runs (Restate's)."""


@dataclass(frozen=True)
class Sent(Generic[OutputT]):
    """A send the ingress accepted: the invocation's id, and whether it was new."""

    invocation_id: str
    status: str
    """``Accepted``, or ``PreviouslyAccepted`` for an idempotency key or workflow id seen before."""
    output_type: Any = None


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    invocation_id: str | None = None
    """The invocation the request is about, when the client knows it before the answer."""


CLIENT_KEY_PREFIX = "perdure-client-"
"""The idempotency keys the typed client gives calls that have none of their caller's."""


def handler_def(handler: Any) -> HandlerDef:
    h = getattr(handler, "__perdure_handler__", None)
    if not isinstance(h, HandlerDef):
        raise TypeError(f"{handler!r} is not a Perdure handler (decorate it with @svc.handler())")
    return h


def target_path(h: HandlerDef, key: str | None) -> str:
    check_key(h, key)
    parts = (h.service, h.name) if key is None else (h.service, key, h.name)
    return "/" + "/".join(quote(p, safe="") for p in parts)


def workflow_request(h: HandlerDef, key: str | None, verb: str) -> Request:
    """``GET /restate/workflow/{name}/{id}/attach`` (or ``output``) of ``h``'s workflow run."""
    assert key is not None
    path = f"/restate/workflow/{quote(h.service, safe='')}/{quote(key, safe='')}/{verb}"
    return Request("GET", path, invocation_id=str(workflow_run_id(h.service, key)))


def by_id_request(invocation_id: str, verb: str) -> Request:
    """``GET /restate/invocation/{id}/attach`` (or ``output``)."""
    path = f"/restate/invocation/{invocation_id}/{verb}"
    return Request("GET", path, invocation_id=invocation_id)


def invoke_request(
    h: HandlerDef,
    arg: Any,
    key: str | None,
    *,
    send: bool,
    idempotency_key: str | None,
    delay: timedelta | None,
    headers: dict[str, str] | None,
) -> Request:
    path = target_path(h, key) + ("/send" if send else "")
    body = serde.encode(arg, h.input_type) if h.takes_input else b""
    extra = dict(headers or {})
    if idempotency_key is None and not send and h.invocation_kind is not HandlerKind.WORKFLOW:
        # A key of the client's own names the invocation before the ingress answers, so a
        # call that times out can say which invocation goes on (CallTimeoutError), and the
        # caller can attach to it (or call again with the key: the same invocation).
        idempotency_key = f"{CLIENT_KEY_PREFIX}{uuid.uuid4().hex}"
    invocation_id = None
    if idempotency_key is not None:
        extra["idempotency-key"] = idempotency_key
        uid = idempotent_uid(h.service, h.name, key, idempotency_key)
        invocation_id = str(invocation_id_for(h, key, uid))
    elif h.invocation_kind is HandlerKind.WORKFLOW:
        invocation_id = str(invocation_id_for(h, key, None))
    params: tuple[tuple[str, str], ...] = ()
    if delay is not None:
        if not send:
            raise TerminalError("a delay applies to a send only", 400)
        params = (("delay", f"{int(delay.total_seconds() * 1000)}ms"),)
    return Request(
        "POST",
        path,
        body,
        (("content-type", "application/json"), *extra.items()),
        params,
        invocation_id,
    )


def decode(response: httpx.Response, output_type: Any) -> Any:
    raise_for(response)
    return serde.decode(response.content or b"null", output_type, what="the handler's result")


def sent(response: httpx.Response, output_type: Any) -> Sent[Any]:
    raise_for(response)
    doc = response.json()
    return Sent(str(doc["invocationId"]), str(doc.get("status", "Accepted")), output_type)


def raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        doc = response.json()
        message = str(doc.get("message", response.text))
    except ValueError:
        message = response.text
    raise TerminalError(message or response.reason_phrase, response.status_code)


def awakeable_request(awakeable: str, value: Any, reason: str | None) -> Request:
    verb = "resolve" if reason is None else "reject"
    body = serde.encode(value) if reason is None else reason.encode()
    path = f"/restate/awakeables/{quote(awakeable, safe='')}/{verb}"
    return Request("POST", path, body, (("content-type", "application/json"),))


def call_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - {"idempotency_key", "headers"}
    if unknown:
        raise TypeError(f"unknown call options: {', '.join(sorted(unknown))}")
    return {"idempotency_key": options.get("idempotency_key"), "headers": options.get("headers")}


def send_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - {"idempotency_key", "headers", "delay"}
    if unknown:
        raise TypeError(f"unknown send options: {', '.join(sorted(unknown))}")
    return {
        "idempotency_key": options.get("idempotency_key"),
        "headers": options.get("headers"),
        "delay": options.get("delay"),
    }


def id_and_type(invocation: str | Sent[Any]) -> tuple[str, Any]:
    if isinstance(invocation, Sent):
        return invocation.invocation_id, invocation.output_type
    return invocation, None


def timed_out(r: Request, err: Exception) -> CallTimeoutError:
    """The error of a request that timed out: it names the invocation, which goes on."""
    about = f"; invocation {r.invocation_id} goes on" if r.invocation_id else ""
    return CallTimeoutError(
        f"no answer from the ingress in time ({type(err).__name__}){about}", r.invocation_id
    )


def transport_error(r: Request, err: httpx.HTTPError) -> Exception:
    """What a request that got no answer raises: a timeout names its invocation, which goes on;
    an ingress out of reach is a 503."""
    if isinstance(err, httpx.TimeoutException):
        return timed_out(r, err)
    return TerminalError(f"cannot reach the ingress: {err}", 503)


@dataclass(frozen=True)
class Operation:
    """One request of a client and how its answer is read: the same for the blocking and the
    asyncio client, which differ only in how they send it."""

    request: Request
    read: Callable[[httpx.Response], Any]

    def send_kwargs(self) -> dict[str, Any]:
        """The arguments of httpx's ``request`` for it."""
        r = self.request
        return {
            "method": r.method,
            "url": r.path,
            "content": r.body,
            "headers": dict(r.headers),
            "params": dict(r.params),
        }


def call_operation(h: HandlerDef, arg: Any, key: str | None, **options: Any) -> Operation:
    request = invoke_request(h, arg, key, send=False, delay=None, **call_options(options))
    return Operation(request, lambda response: decode(response, h.output_type))


def send_operation(h: HandlerDef, arg: Any, key: str | None, **options: Any) -> Operation:
    request = invoke_request(h, arg, key, send=True, **send_options(options))
    return Operation(request, lambda response: sent(response, h.output_type))


def workflow_operation(h: HandlerDef, key: str | None, verb: str) -> Operation:
    return Operation(workflow_request(h, key, verb), lambda r: decode(r, h.output_type))


def by_id_operation(invocation: str | Sent[Any], verb: str) -> Operation:
    iid, output_type = id_and_type(invocation)
    return Operation(by_id_request(iid, verb), lambda r: decode(r, output_type))


def awakeable_operation(awakeable: str, value: Any, reason: str | None) -> Operation:
    return Operation(awakeable_request(awakeable, value, reason), raise_for)


def cancel_operation(invocation_id: str, kill: bool) -> Operation:
    params = (("mode", "kill"),) if kill else ()
    request = Request("DELETE", f"/restate/invocation/{invocation_id}", params=params)
    return Operation(request, raise_for)
