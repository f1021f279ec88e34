"""Calls and sends between handlers, journaled: neither lost nor made twice after a crash.

The handler's parameter types reach the caller: ``await ctx.service_call(add, "one")`` for
``async def add(ctx: Context, n: int) -> int`` is a type error, and the result is an ``int``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar, overload

from perdure.engine.ids import call_uid
from perdure.engine.model import CallSpec, EntryKind, HandlerKind, JournalEntry, Target
from perdure.engine.scopes import scoped_key, split_key
from perdure.sdk import serde
from perdure.sdk.call_targets import check_key, invocation_id_for
from perdure.sdk.errors import TerminalError, checked_delay_ms, checked_name
from perdure.sdk.journal import SendHandle
from perdure.sdk.journal_cursor import JournalCursor

InputT = TypeVar("InputT")
OutputT = TypeVar("OutputT")


class HandlerCalls(JournalCursor):
    """The calls of a handler's context (``service_call``, ``object_send``, ...)."""

    @overload
    async def service_call(self, handler: Callable[[Any], Awaitable[OutputT]]) -> OutputT: ...

    @overload
    async def service_call(
        self, handler: Callable[[Any, InputT], Awaitable[OutputT]], arg: InputT
    ) -> OutputT: ...

    async def service_call(self, handler: Callable[..., Awaitable[Any]], arg: Any = None) -> Any:
        """Calls a service handler durably and returns its result.

        The call and its result are journaled: after a crash on either side it is neither lost
        nor made twice. A :class:`TerminalError` of the callee is raised here.
        """
        return await self._call_handler(handler, None, arg)

    @overload
    async def object_call(
        self, handler: Callable[[Any], Awaitable[OutputT]], key: str
    ) -> OutputT: ...

    @overload
    async def object_call(
        self, handler: Callable[[Any, InputT], Awaitable[OutputT]], key: str, arg: InputT
    ) -> OutputT: ...

    async def object_call(
        self, handler: Callable[..., Awaitable[Any]], key: str, arg: Any = None
    ) -> Any:
        """Calls a virtual object's handler for ``key`` durably and returns its result."""
        return await self._call_handler(handler, key, arg)

    @overload
    async def workflow_call(
        self, handler: Callable[[Any], Awaitable[OutputT]], key: str
    ) -> OutputT: ...

    @overload
    async def workflow_call(
        self, handler: Callable[[Any, InputT], Awaitable[OutputT]], key: str, arg: InputT
    ) -> OutputT: ...

    async def workflow_call(
        self, handler: Callable[..., Awaitable[Any]], key: str, arg: Any = None
    ) -> Any:
        """Calls a workflow handler (its main one runs once per id) and returns its result."""
        return await self._call_handler(handler, key, arg)

    @overload
    async def service_send(
        self, handler: Callable[[Any], Awaitable[Any]], *, delay: timedelta | None = None
    ) -> SendHandle: ...

    @overload
    async def service_send(
        self,
        handler: Callable[[Any, InputT], Awaitable[Any]],
        arg: InputT,
        *,
        delay: timedelta | None = None,
    ) -> SendHandle: ...

    async def service_send(
        self, handler: Callable[..., Any], arg: Any = None, *, delay: timedelta | None = None
    ) -> SendHandle:
        """Starts a service handler without waiting for it; returns its invocation's handle.

        With ``delay``, the invocation is scheduled: it starts no earlier than ``delay`` from now.
        """
        return await self._send(handler, None, arg, delay)

    @overload
    async def object_send(
        self,
        handler: Callable[[Any], Awaitable[Any]],
        key: str,
        *,
        delay: timedelta | None = None,
    ) -> SendHandle: ...

    @overload
    async def object_send(
        self,
        handler: Callable[[Any, InputT], Awaitable[Any]],
        key: str,
        arg: InputT,
        *,
        delay: timedelta | None = None,
    ) -> SendHandle: ...

    async def object_send(
        self,
        handler: Callable[..., Any],
        key: str,
        arg: Any = None,
        *,
        delay: timedelta | None = None,
    ) -> SendHandle:
        """Starts a virtual object's handler for ``key`` without waiting for it."""
        return await self._send(handler, key, arg, delay)

    @overload
    async def workflow_send(
        self,
        handler: Callable[[Any], Awaitable[Any]],
        key: str,
        *,
        delay: timedelta | None = None,
    ) -> SendHandle: ...

    @overload
    async def workflow_send(
        self,
        handler: Callable[[Any, InputT], Awaitable[Any]],
        key: str,
        arg: InputT,
        *,
        delay: timedelta | None = None,
    ) -> SendHandle: ...

    async def workflow_send(
        self,
        handler: Callable[..., Any],
        key: str,
        arg: Any = None,
        *,
        delay: timedelta | None = None,
    ) -> SendHandle:
        """Starts a workflow handler without waiting for it."""
        return await self._send(handler, key, arg, delay)

    def _call_spec(
        self, handler: Callable[..., Any], key: str | None, arg: Any
    ) -> tuple[Any, CallSpec]:
        h = getattr(handler, "__perdure_handler__", None)
        if h is None:
            raise TerminalError(f"{handler!r} is not a Perdure handler (decorate it first)")
        kind = h.invocation_kind
        check_key(h, key, 500)
        if key is not None and self._target is not None and self._target.key is not None:
            # A call from a scoped object or workflow stays in its scope.
            key = scoped_key(split_key(self._target.key)[0], key)
        if key is not None:
            checked_name(key, f"the key of a call to {h.service}/{h.name}")
        if (
            kind is HandlerKind.EXCLUSIVE
            and self._handler_kind is HandlerKind.EXCLUSIVE
            and self._target is not None
            and (self._target.service, self._target.key) == (h.service, key)
        ):
            raise TerminalError(
                f"calling exclusive handler {h.service}/{key}/{h.name} from an exclusive handler "
                f"of the same key would deadlock: use a send, or a shared handler",
                500,
            )
        body = serde.encode(arg, h.input_type) if h.takes_input else b""
        index = self._next_index  # the entry this call is about to take
        uid = call_uid(self.invocation_id, index)
        callee = str(invocation_id_for(h, key, uid))
        return h, CallSpec(Target(h.service, h.name, key), kind, body, callee)

    async def _call_handler(self, handler: Callable[..., Any], key: str | None, arg: Any) -> Any:
        h, spec = self._call_spec(handler, key, arg)
        name = str(spec.target)
        entry = await self._record(
            EntryKind.CALL, name, JournalEntry(EntryKind.CALL, name, call=spec, completed=False)
        )
        return self._outcome(entry, h.output_type)

    async def _send(
        self,
        handler: Callable[..., Any],
        key: str | None,
        arg: Any,
        delay: timedelta | None = None,
    ) -> SendHandle:
        _, spec = self._call_spec(handler, key, arg)
        if delay is not None:
            ms = max(int(delay.total_seconds() * 1000), 0)
            spec = replace(spec, delay_ms=checked_delay_ms(ms, "a send's delay"))
        name = str(spec.target)
        entry = await self._record(
            EntryKind.SEND, name, JournalEntry(EntryKind.SEND, name, call=spec, completed=False)
        )
        return SendHandle((entry.value or b"").decode() or spec.callee_id)
