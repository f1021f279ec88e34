"""Calling Perdure handlers from Python: a client of the ingress's HTTP contract, sync and async.

Two ways to name what to call, both decoding results with the handler's own types (pydantic
models, dataclasses, ...) and raising :class:`~sdk.errors.TerminalError` with the HTTP status
for a failure:

* by the handler function, statically typed by its signature::

      client = PerdureClient("http://localhost:8080")
      out = client.call(process_payment, order, idempotency_key="order-1")
      handle = client.send(process_payment, order, delay=timedelta(minutes=5))

* through the service, as Restate's clients do::

      client.service(payments).process_payment(order, idempotency_key="order-1")
      client.object(cart, "ann").add_item({"sku": "book"})
      client.workflow(signup, "ann").submit({"email": "ann@x.org"})
      client.workflow(signup, "ann").attach()

:class:`AsyncPerdureClient` has the same methods, awaitable. Only the handler's module is
needed, not a worker: the client imports nothing of the engine's runtime.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar, overload

import httpx

from perdure.engine.model import HandlerKind
from perdure.sdk.client_http import (
    Operation,
    Sent,
    awakeable_operation,
    by_id_operation,
    call_operation,
    cancel_operation,
    handler_def,
    send_operation,
    transport_error,
    workflow_operation,
)
from perdure.sdk.errors import TerminalError
from perdure.sdk.service import HandlerDef, ServiceDefinition

InputT = TypeVar("InputT")
OutputT = TypeVar("OutputT")


class _Bound:
    """``client.service(svc)``, ``.object(obj, key)``, ``.workflow(wf, id)``: its handlers as
    attributes. A workflow's also has ``submit``, ``attach`` and ``output``."""

    def __init__(self, client: Any, svc: ServiceDefinition, key: str | None) -> None:
        self._client = client
        self._svc = svc
        self._key = key

    def __getattr__(self, name: str) -> Any:
        h = self._svc.handlers.get(name)
        if h is None:
            raise AttributeError(f"service {self._svc.name!r} has no handler {name!r}")
        client, key = self._client, self._key

        def call(arg: Any = None, **options: Any) -> Any:
            return client._call_def(h, arg, key, **options)

        def send(arg: Any = None, **options: Any) -> Any:
            return client._send_def(h, arg, key, **options)

        call.send = send  # type: ignore[attr-defined]
        return call

    def submit(self, arg: Any = None, **options: Any) -> Any:
        """Starts the workflow's run for this id (a send to its main handler)."""
        return self._client._send_def(self._main(), arg, self._key, **options)

    def attach(self) -> Any:
        """Waits for the workflow run's result."""
        return self._client._workflow(self._main(), self._key, "attach")

    def output(self) -> Any:
        """The workflow run's result if it finished; a 470 :class:`TerminalError` if not."""
        return self._client._workflow(self._main(), self._key, "output")

    def _main(self) -> HandlerDef:
        for h in self._svc.handlers.values():
            if h.invocation_kind is HandlerKind.WORKFLOW:
                return h
        raise TerminalError(f"{self._svc.name!r} is not a workflow", 400)


class _ClientBase:
    def service(self, svc: ServiceDefinition) -> Any:
        """The handlers of a service, as attributes: ``client.service(payments).pay(order)``."""
        return _Bound(self, svc, None)

    def object(self, obj: ServiceDefinition, key: str) -> Any:
        """The handlers of a virtual object's ``key``."""
        return _Bound(self, obj, key)

    def workflow(self, wf: ServiceDefinition, workflow_id: str) -> Any:
        """The handlers of one workflow run, and its ``submit``, ``attach`` and ``output``."""
        return _Bound(self, wf, workflow_id)


class PerdureClient(_ClientBase):
    """A blocking client of a Perdure ingress (``http://host:8080``), built on httpx.

    Args:
        url: the ingress's base URL.
        timeout: how long one request may take; a call waits for its handler's result.
        http: an httpx client of your own (its base URL is used as given).
    """

    def __init__(
        self,
        url: str = "http://localhost:8080",
        *,
        timeout: float = 300.0,
        http: httpx.Client | None = None,
    ) -> None:
        self._http = http or httpx.Client(base_url=url.rstrip("/"), timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PerdureClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _run(self, op: Operation) -> Any:
        try:
            response = self._http.request(**op.send_kwargs())
        except (httpx.TimeoutException, httpx.TransportError) as err:
            raise transport_error(op.request, err) from err
        return op.read(response)

    @overload
    def call(
        self,
        handler: Callable[[Any], Awaitable[OutputT]],
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> OutputT: ...

    @overload
    def call(
        self,
        handler: Callable[[Any, InputT], Awaitable[OutputT]],
        arg: InputT,
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> OutputT: ...

    def call(
        self,
        handler: Any,
        arg: Any = None,
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Calls a handler and returns its result (decoded by its return annotation)."""
        return self._call_def(
            handler_def(handler), arg, key, idempotency_key=idempotency_key, headers=headers
        )

    @overload
    def send(
        self,
        handler: Callable[[Any], Awaitable[OutputT]],
        *,
        key: str | None = None,
        delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Sent[OutputT]: ...

    @overload
    def send(
        self,
        handler: Callable[[Any, InputT], Awaitable[OutputT]],
        arg: InputT,
        *,
        key: str | None = None,
        delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Sent[OutputT]: ...

    def send(
        self,
        handler: Any,
        arg: Any = None,
        *,
        key: str | None = None,
        delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Sent[Any]:
        """Starts a handler without waiting (``delay``: no sooner than that from now)."""
        h = handler_def(handler)
        return self._send_def(
            h, arg, key, delay=delay, idempotency_key=idempotency_key, headers=headers
        )

    @overload
    def attach(self, invocation_id: Sent[OutputT]) -> OutputT: ...

    @overload
    def attach(self, invocation_id: str) -> Any: ...

    def attach(self, invocation_id: str | Sent[Any]) -> Any:
        """Waits for an invocation's result (typed if given the :class:`Sent` of its send)."""
        return self._by_id(invocation_id, "attach")

    def output(self, invocation_id: str | Sent[Any]) -> Any:
        """An invocation's result if it finished; a 470 :class:`TerminalError` if not."""
        return self._by_id(invocation_id, "output")

    def resolve_awakeable(self, awakeable: str, value: Any = None) -> None:
        """Completes an awakeable with ``value``; 404 unknown, 409 completed already."""
        self._run(awakeable_operation(awakeable, value, None))

    def reject_awakeable(self, awakeable: str, reason: str) -> None:
        """Fails an awakeable: the handler's await raises ``TerminalError(reason)``."""
        self._run(awakeable_operation(awakeable, None, reason))

    def cancel(self, invocation_id: str, *, kill: bool = False) -> None:
        """Cancels an invocation (its compensations run), or with ``kill`` stops it at once."""
        self._run(cancel_operation(invocation_id, kill))

    def _call_def(self, h: HandlerDef, arg: Any, key: str | None, **options: Any) -> Any:
        return self._run(call_operation(h, arg, key, **options))

    def _send_def(self, h: HandlerDef, arg: Any, key: str | None, **options: Any) -> Sent[Any]:
        return self._run(send_operation(h, arg, key, **options))  # type: ignore[no-any-return]

    def _workflow(self, h: HandlerDef, key: str | None, verb: str) -> Any:
        return self._run(workflow_operation(h, key, verb))

    def _by_id(self, invocation: str | Sent[Any], verb: str) -> Any:
        return self._run(by_id_operation(invocation, verb))


class AsyncPerdureClient(_ClientBase):
    """The same as :class:`PerdureClient`, for asyncio: every method is awaited."""

    def __init__(
        self,
        url: str = "http://localhost:8080",
        *,
        timeout: float = 300.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = http or httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncPerdureClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _run(self, op: Operation) -> Any:
        try:
            response = await self._http.request(**op.send_kwargs())
        except (httpx.TimeoutException, httpx.TransportError) as err:
            raise transport_error(op.request, err) from err
        return op.read(response)

    @overload
    async def call(
        self,
        handler: Callable[[Any], Awaitable[OutputT]],
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> OutputT: ...

    @overload
    async def call(
        self,
        handler: Callable[[Any, InputT], Awaitable[OutputT]],
        arg: InputT,
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> OutputT: ...

    async def call(
        self,
        handler: Any,
        arg: Any = None,
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Calls a handler and returns its result (decoded by its return annotation)."""
        return await self._call_def(
            handler_def(handler), arg, key, idempotency_key=idempotency_key, headers=headers
        )

    @overload
    async def send(
        self,
        handler: Callable[[Any], Awaitable[OutputT]],
        *,
        key: str | None = None,
        delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Sent[OutputT]: ...

    @overload
    async def send(
        self,
        handler: Callable[[Any, InputT], Awaitable[OutputT]],
        arg: InputT,
        *,
        key: str | None = None,
        delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Sent[OutputT]: ...

    async def send(
        self,
        handler: Any,
        arg: Any = None,
        *,
        key: str | None = None,
        delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Sent[Any]:
        h = handler_def(handler)
        return await self._send_def(
            h, arg, key, delay=delay, idempotency_key=idempotency_key, headers=headers
        )

    @overload
    async def attach(self, invocation_id: Sent[OutputT]) -> OutputT: ...

    @overload
    async def attach(self, invocation_id: str) -> Any: ...

    async def attach(self, invocation_id: str | Sent[Any]) -> Any:
        """Waits for an invocation's result (typed if given the :class:`Sent` of its send)."""
        return await self._by_id(invocation_id, "attach")

    async def output(self, invocation_id: str | Sent[Any]) -> Any:
        return await self._by_id(invocation_id, "output")

    async def resolve_awakeable(self, awakeable: str, value: Any = None) -> None:
        """Completes an awakeable with ``value``; 404 unknown, 409 completed already."""
        await self._run(awakeable_operation(awakeable, value, None))

    async def reject_awakeable(self, awakeable: str, reason: str) -> None:
        """Fails an awakeable: the handler's await raises ``TerminalError(reason)``."""
        await self._run(awakeable_operation(awakeable, None, reason))

    async def cancel(self, invocation_id: str, *, kill: bool = False) -> None:
        """Cancels an invocation (its compensations run), or with ``kill`` stops it at once."""
        await self._run(cancel_operation(invocation_id, kill))

    async def _call_def(self, h: HandlerDef, arg: Any, key: str | None, **options: Any) -> Any:
        return await self._run(call_operation(h, arg, key, **options))

    async def _send_def(
        self, h: HandlerDef, arg: Any, key: str | None, **options: Any
    ) -> Sent[Any]:
        return await self._run(send_operation(h, arg, key, **options))  # type: ignore[no-any-return]

    async def _workflow(self, h: HandlerDef, key: str | None, verb: str) -> Any:
        return await self._run(workflow_operation(h, key, verb))

    async def _by_id(self, invocation: str | Sent[Any], verb: str) -> Any:
        return await self._run(by_id_operation(invocation, verb))
