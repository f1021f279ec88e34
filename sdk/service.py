"""Services and their handlers.

A decorator checks a handler's signature when the module is imported, not at its first call:
the first parameter is the context, an optional second one is the input (its annotation, if
any, is used to validate and convert it), and the return annotation converts the output.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar, get_type_hints

from perdure.engine.model import HandlerKind as EngineHandlerKind
from perdure.engine.model import ServiceKind
from perdure.engine.subscriptions import InvalidSubscription, check_options
from perdure.sdk import serde
from perdure.sdk.errors import HandlerDefinitionError
from perdure.sdk.options import DEFAULT_RETRY_POLICY, RetryPolicy, Subscribe

HandlerKind = Literal["exclusive", "shared", "workflow"]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
Subscriptions = str | Subscribe | Sequence[str | Subscribe] | None
"""A handler's ``subscribe=``: a topic name, a :class:`Subscribe`, or several."""


def _subscriptions(given: Subscriptions) -> tuple[Subscribe, ...]:
    if given is None:
        return ()
    if isinstance(given, (str, Subscribe)):
        items: list[object] = [given]
    elif isinstance(given, Sequence):
        items = list(given)
    else:
        items = [given]
    out: list[Subscribe] = []
    for item in items:
        sub = Subscribe(item) if isinstance(item, str) else item
        if not isinstance(sub, Subscribe) or not sub.topic or "/" in sub.topic:
            raise HandlerDefinitionError(f"subscribe= takes topic names or Subscribe, not {item!r}")
        try:
            check_options(dict(sub.options))
        except InvalidSubscription as err:
            raise HandlerDefinitionError(f"subscribe={item!r}: {err}") from None
        out.append(sub)
    return tuple(out)


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
    service_kind: ServiceKind = ServiceKind.SERVICE
    subscriptions: tuple[Subscribe, ...] = ()
    """Kafka topics whose records invoke this handler."""

    @property
    def raw_input(self) -> bool:
        """The input is the request body's bytes as they are (annotated ``bytes``), not JSON."""
        return self.takes_input and self.input_type is bytes

    @property
    def invocation_kind(self) -> EngineHandlerKind:
        """How invocations of this handler take part in their key's concurrency."""
        if self.service_kind is ServiceKind.SERVICE:
            return EngineHandlerKind.SERVICE
        if self.kind == "shared":
            return EngineHandlerKind.SHARED
        if self.kind == "workflow":
            return EngineHandlerKind.WORKFLOW
        return EngineHandlerKind.EXCLUSIVE

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


class ServiceDefinition:
    """What services, virtual objects and workflows have in common."""

    kind: ServiceKind = ServiceKind.SERVICE

    def __init__(self, name: str) -> None:
        if not name or "/" in name or name.startswith("restate"):
            raise HandlerDefinitionError(f"invalid service name {name!r}")
        self.name = name
        self.handlers: dict[str, HandlerDef] = {}

    def _decorator(
        self,
        name: str | None,
        kind: HandlerKind | None,
        retry: RetryPolicy | None,
        subscribe: Subscriptions = None,
    ) -> Callable[[F], F]:
        subscriptions = _subscriptions(subscribe)

        def decorate(fn: F) -> F:
            h = _make_handler(self.name, fn, name, kind, retry or DEFAULT_RETRY_POLICY)
            h = replace(h, service_kind=self.kind, subscriptions=subscriptions)
            self._register(h)
            fn.__perdure_handler__ = h  # type: ignore[attr-defined]  # for ctx.*_call(fn, ...)
            return fn

        return decorate

    def _register(self, h: HandlerDef) -> None:
        if h.name in self.handlers:
            raise HandlerDefinitionError(f"{self.name} already has a handler named {h.name!r}")
        if not h.name or "/" in h.name or h.name == "send":
            raise HandlerDefinitionError(f"invalid handler name {h.name!r}")
        self.handlers[h.name] = h


class Service(ServiceDefinition):
    """A stateless durable service: each invocation runs to completion, steps at most once.

    Example::

        payments = Service("payments")

        @payments.handler()
        async def process(ctx: Context, order: dict) -> dict: ...
    """

    kind = ServiceKind.SERVICE

    def handler(
        self,
        name: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        subscribe: Subscriptions = None,
    ) -> Callable[[F], F]:
        """Registers an async handler ``(ctx: Context[, input]) -> output``.

        Args:
            name: the handler's name in paths (default: the function's name).
            retry: how failed attempts are retried (default :class:`RetryPolicy`).
            subscribe: Kafka topics whose records invoke it (see :class:`Subscribe`).
        """

        return self._decorator(name, None, retry, subscribe)


class VirtualObject(ServiceDefinition):
    """A keyed entity with durable state and a single writer per key.

    Exclusive handlers (the default) run one at a time per key, in arrival order; shared
    handlers (``kind="shared"``) run concurrently with everything and may only read state.
    """

    kind = ServiceKind.OBJECT

    def handler(
        self,
        name: str | None = None,
        *,
        kind: Literal["exclusive", "shared"] = "exclusive",
        retry: RetryPolicy | None = None,
        subscribe: Subscriptions = None,
    ) -> Callable[[F], F]:
        """Registers an async handler ``(ctx: ObjectContext[, input]) -> output``.

        With ``subscribe``, each record of the topic invokes it with the record's key as the
        object key, one record at a time per key for an exclusive handler.
        """
        if kind not in ("exclusive", "shared"):
            raise HandlerDefinitionError(f"kind must be 'exclusive' or 'shared', not {kind!r}")
        return self._decorator(name, kind, retry, subscribe)


class Workflow(ServiceDefinition):
    """A workflow: one ``main`` run per workflow id, plus shared handlers that run alongside it."""

    kind = ServiceKind.WORKFLOW

    def main(
        self,
        name: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        subscribe: Subscriptions = None,
    ) -> Callable[[F], F]:
        """Registers the workflow's main handler ``(ctx: WorkflowContext[, input])``.

        With ``subscribe``, each record of the topic starts the workflow whose id is the
        record's key (once per id, as for any workflow).
        """
        if any(h.kind == "workflow" for h in self.handlers.values()):
            raise HandlerDefinitionError(f"workflow {self.name} already has a main handler")
        return self._decorator(name, "workflow", retry, subscribe)

    def handler(
        self, name: str | None = None, *, retry: RetryPolicy | None = None
    ) -> Callable[[F], F]:
        """Registers a shared handler ``(ctx: WorkflowSharedContext[, input])``."""
        return self._decorator(name, "shared", retry)

    @property
    def main_handler(self) -> HandlerDef | None:
        """The main handler, once registered."""
        return next((h for h in self.handlers.values() if h.kind == "workflow"), None)
