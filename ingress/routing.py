"""From an HTTP path to a target: which handler, which key, which invocation id.

Paths (Restate-compatible): ``/{service}/{handler}``, ``/{object}/{key}/{handler}``,
``/{workflow}/{id}/{main handler or "run"}`` and ``/{workflow}/{id}/{shared handler}``, each
with an optional ``/send``, and the same under ``/restate/call/...`` and ``/restate/send/...``.
Keys are URL-encoded path segments. The service registry says what kind each service is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from perdure.engine.ids import InvocationId, idempotent_uid, workflow_run_id
from perdure.engine.limits import check_delay_ms
from perdure.engine.model import HandlerKind, Target
from perdure.engine.scopes import check_scope, scoped_key
from perdure.ingress.errors import IngressError, checked_name


@dataclass(frozen=True)
class Route:
    """Where a request goes."""

    target: Target
    handler_kind: HandlerKind
    send: bool
    scope: str | None = None
    """Its scope (``/restate/scope/{scope}/...``): already part of a keyed target's key."""
    raw_input: bool = False
    """The handler takes its input as bytes: the body is not checked as JSON."""

    def invocation_id(self, idempotency_key: str | None) -> InvocationId:
        """The invocation's id: fixed by the workflow id or idempotency key, else fresh."""
        t = self.target
        if self.handler_kind is HandlerKind.WORKFLOW:
            assert t.key is not None
            return workflow_run_id(t.service, t.key)
        uid = None
        if idempotency_key:
            # A service has no key to carry the scope: the idempotency key does.
            idem = idempotency_key if t.key is not None else scoped_key(self.scope, idempotency_key)
            uid = idempotent_uid(t.service, t.handler, t.key, idem)
        if t.key is None:
            return InvocationId.new_unkeyed(uid)
        return InvocationId.for_key(t.key.encode(), uid or InvocationId.new_unkeyed().uid)


def split_path(raw_path: bytes) -> list[str]:
    """The segments of a request's raw path, each URL-decoded on its own.

    Decoding after splitting keeps ``a%2Fb`` one segment (a key with a slash, as Restate's
    clients encode it), and an empty segment stays (``/counter//add``: the empty key).

    Raises:
        IngressError: 400 for a segment that is not UTF-8 once decoded (``x%FFy``): replacing
            the bad bytes would make distinct paths name one key.
    """
    parts = raw_path.decode("ascii", errors="replace").split("/")[1:]
    if len(parts) > 1 and parts[-1] == "":
        parts = parts[:-1]  # a trailing slash
    try:
        return [unquote(p, errors="strict") for p in parts]
    except UnicodeDecodeError:
        raise IngressError(400, "the path is not valid UTF-8 once URL-decoded") from None


def route(segments: list[str], services: dict[str, dict[str, Any]]) -> Route:
    """Parses a path's segments against the registry; raises :class:`IngressError` (404 or 400).

    Two families: ``/restate/call|send/{service}[/{key}]/{handler}`` (Restate 1.7) and the
    legacy ``/{service}[/{key}]/{handler}[/send]``.
    """
    path = "/" + "/".join(segments)
    if segments[:1] == ["restate"]:
        verb = segments[1] if len(segments) > 1 else ""
        if verb in ("call", "send"):
            return _target(segments[2:], services, verb == "send", path)
        if verb == "scope" and len(segments) > 3 and segments[3] in ("call", "send"):
            scope = segments[2]
            problem = check_scope(scope)
            if problem is not None:
                raise IngressError(400, problem)
            return _target(segments[4:], services, segments[3] == "send", path, scope)
        raise IngressError(404, f"no such path: {path}")
    parts = list(segments)
    send = len(parts) > 2 and parts[-1] == "send"
    if send:
        parts = parts[:-1]
    return _target(parts, services, send, path)


def _target(
    parts: list[str],
    services: dict[str, dict[str, Any]],
    send: bool,
    path: str,
    scope: str | None = None,
) -> Route:
    if not parts or len(parts) > 3 or not parts[0]:
        raise IngressError(404, f"no such path: {path}")
    entry = services.get(parts[0])
    if entry is None:
        raise IngressError(404, f"service {parts[0]!r} not found")
    service, kind, handlers = parts[0], entry.get("kind", "service"), entry.get("handlers", {})
    if kind == "service":
        if len(parts) == 3:
            if parts[2] in handlers or parts[1] not in handlers:
                raise IngressError(400, f"{service} is a service: its paths take no key")
            raise IngressError(404, f"no such path: {path}")
        if len(parts) != 2:
            raise IngressError(404, f"no such path: {path}")
        key, handler = None, parts[1]
    else:
        if len(parts) == 2 and parts[1] in handlers:
            # The empty key: Restate's clients leave its segment out (/{object}/{handler}).
            key, handler = "", parts[1]
        elif len(parts) == 2:
            noun = "an object" if kind == "object" else "a workflow"
            raise IngressError(
                400, f"{service} is {noun}: the path needs a key, /{service}/{{key}}/{{handler}}"
            )
        else:
            key, handler = parts[1], parts[2]
        if kind == "workflow" and handler == "run" and "run" not in handlers:
            handler = next((h for h, d in handlers.items() if d.get("kind") == "workflow"), handler)
    spec = handlers.get(handler)
    if spec is None:
        raise IngressError(404, f"handler {handler!r} not found in service {service!r}")
    if key is not None:
        key = scoped_key(scope, key)
        checked_name(key, "the key")
    kind_of = _kind(kind, spec.get("kind"))
    return Route(Target(service, handler, key), kind_of, send, scope, bool(spec.get("raw_input")))


def _kind(service_kind: str, handler_kind: str | None) -> HandlerKind:
    if service_kind == "service":
        return HandlerKind.SERVICE
    if handler_kind == "shared":
        return HandlerKind.SHARED
    if handler_kind == "workflow":
        return HandlerKind.WORKFLOW
    return HandlerKind.EXCLUSIVE


# ASCII digits only: \d also takes other scripts' digits ("٣s" would be read as 3 s).
_HUMAN = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)")
_ISO = re.compile(
    r"P(?:(?P<d>[0-9]+(?:\.[0-9]+)?)D)?"
    r"(?:T(?:(?P<h>[0-9]+(?:\.[0-9]+)?)H)?(?:(?P<m>[0-9]+(?:\.[0-9]+)?)M)?"
    r"(?:(?P<s>[0-9]+(?:\.[0-9]+)?)S)?)?"
)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_delay(text: str) -> int:
    """A delay in milliseconds from ``10s``, ``1m30s``, ``500ms``, ISO-8601 ``PT10S``, or a bare
    number of milliseconds (``1000``, as Restate's Python client sends it).

    Raises:
        IngressError: 400, for anything else, and for a delay over
            :data:`engine.limits.MAX_DELAY_MS` (what the log's times can hold).
    """
    try:
        return check_delay_ms(_delay_ms(text.strip()))
    except (OverflowError, ValueError) as err:  # LimitExceeded is a ValueError
        raise IngressError(400, f"bad delay {text[:60]!r}: {err}") from None


def _delay_ms(text: str) -> int:
    if text.isascii() and text.isdigit():
        return int(text)
    iso = _ISO.fullmatch(text.upper()) if text.upper().startswith("P") else None
    if iso is not None and any(iso.groupdict().values()):
        parts = {k: float(v) for k, v in iso.groupdict().items() if v}
        return int(
            parts.get("d", 0) * 86_400_000
            + parts.get("h", 0) * 3_600_000
            + parts.get("m", 0) * 60_000
            + parts.get("s", 0) * 1000
        )
    pieces = _HUMAN.findall(text)
    if text and pieces and "".join(f"{n}{u}" for n, u in pieces) == text.replace(" ", ""):
        return int(sum(float(n) * _UNIT_MS[u] for n, u in pieces))
    raise IngressError(400, f"bad delay {text[:60]!r}: use e.g. 10s, 1m30s, 500ms or PT10S")
