"""Services and their handlers.

A decorator checks a handler's signature when the module is imported, not at its first call:
the first parameter is the context, an optional second one is the input (its annotation, if
any, is used to validate and convert it), and the return annotation converts the output.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_type_hints

from engine.model import ServiceKind
from sdk import serde
from sdk.errors import HandlerDefinitionError
from sdk.options import DEFAULT_RETRY_POLICY, RetryPolicy

HandlerKind = Literal["exclusive", "shared", "workflow"]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True)
class HandlerDef:
    """A registered handler: its function, kind, types and retry policy."""

    service: str
    name: str
    fn: Callable[..., Awaitable[Any]]
    kind: HandlerKind | None
    takes_input: bool
    input_type: Any
    output_type: Any
    retry: RetryPolicy = field(default=DEFAULT_RETRY_POLICY)

    async def invoke(self, ctx: Any, raw_input: bytes) -> bytes:
        """Runs the handler on ``raw_input`` and returns its serialized output."""
        if self.takes_input:
            arg = serde.decode(raw_input, self.input_type, what="the request body")
            result = await self.fn(ctx, arg)
        else:
            result = await self.fn(ctx)
        return serde.encode(result, self.output_type)


def _make_handler(
    service: str,
    fn: Callable[..., Awaitable[Any]],
    name: str | None,
    kind: HandlerKind | None,
    retry: RetryPolicy,
) -> HandlerDef:
    if not inspect.iscoroutinefunction(fn):
        raise HandlerDefinitionError(f"handler {fn.__qualname__} must be an async function")
    params = list(inspect.signature(fn).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional or len(positional) > 2 or len(params) != len(positional):
        raise HandlerDefinitionError(
            f"handler {fn.__qualname__} must take (ctx) or (ctx, input), "
            f"got {len(params)} parameters"
        )
    try:
        hints = get_type_hints(fn)
    except Exception as err:
        raise HandlerDefinitionError(
            f"cannot read the annotations of {fn.__qualname__}: {err}"
        ) from err
    takes_input = len(positional) == 2
    input_type = hints.get(positional[1].name) if takes_input else None
    output_type = hints.get("return")
    if output_type is type(None):
        output_type = None
    return HandlerDef(
        service, name or fn.__name__, fn, kind, takes_input, input_type, output_type, retry
    )


class _ServiceBase:
    kind: ServiceKind = ServiceKind.SERVICE

    def __init__(self, name: str) -> None:
        if not name or "/" in name or name.startswith("restate"):
            raise HandlerDefinitionError(f"invalid service name {name!r}")
        self.name = name
        self.handlers: dict[str, HandlerDef] = {}

    def _register(self, h: HandlerDef) -> None:
        if h.name in self.handlers:
            raise HandlerDefinitionError(f"{self.name} already has a handler named {h.name!r}")
        if not h.name or "/" in h.name or h.name == "send":
            raise HandlerDefinitionError(f"invalid handler name {h.name!r}")
        self.handlers[h.name] = h


class Service(_ServiceBase):
    """A stateless durable service: each invocation runs to completion, steps at most once.

    Example::

        payments = Service("payments")

        @payments.handler()
        async def process(ctx: Context, order: dict) -> dict: ...
    """

    kind = ServiceKind.SERVICE

    def handler(
        self, name: str | None = None, *, retry: RetryPolicy | None = None
    ) -> Callable[[F], F]:
        """Registers an async handler ``(ctx: Context[, input]) -> output``.

        Args:
            name: the handler's name in paths (default: the function's name).
            retry: how failed attempts are retried (default :class:`RetryPolicy`).
        """

        def decorate(fn: F) -> F:
            self._register(_make_handler(self.name, fn, name, None, retry or DEFAULT_RETRY_POLICY))
            return fn

        return decorate
