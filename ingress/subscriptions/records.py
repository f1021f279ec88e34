"""What a subscription's record becomes: the Invoke of its sink handler, checked first.

A record that cannot become one (no such handler, no key for a keyed service, a key or a body
that does not parse) raises :class:`DeadLetter`, and goes to the dead-letter topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from confluent_kafka import Message

from perdure.engine.ids import InvocationId
from perdure.engine.model import HandlerKind
from perdure.engine.records import Invoke
from perdure.engine.subscriptions import Subscription, record_key
from perdure.ingress.bodies import strict_loads
from perdure.ingress.errors import IngressError
from perdure.ingress.subscriptions.dead_letters import DeadLetter, own_headers
from perdure.ingress.subscriptions.offsets import TopicPart

if TYPE_CHECKING:
    from perdure.ingress.app import Ingress


@dataclass(frozen=True)
class Prepared:
    """An Invoke and where it goes: its log partition and the record key."""

    invoke: Invoke
    inv: InvocationId
    partition: int
    key: bytes


def prepare(
    sub: Subscription, ingress: Ingress, msg: Message, tp: TopicPart, offset: int
) -> Prepared:
    """The Invoke a record becomes, and where it goes.

    Raises:
        DeadLetter: the record cannot become one (no such handler, no key, bad JSON, ...).
    """
    sink = sub.sink
    registry = ingress.registry
    services = registry.services if registry is not None else {}
    spec = services.get(sink.service, {}).get("handlers", {}).get(sink.handler)
    if spec is None:
        raise DeadLetter("unknown_sink", f"no handler {sink.uri} in the registry", 404)
    kind = services[sink.service].get("kind", "service")
    raw_key = msg.key()
    key: str | None = None
    if kind != "service":
        if raw_key is None:
            raise DeadLetter("no_key", f"{sink.service} is keyed: the record has no key")
        try:
            key = raw_key.decode()
        except UnicodeDecodeError:
            raise DeadLetter("bad_key", "the record's key is not UTF-8") from None
    parts = [sink.service, sink.handler] if key is None else [sink.service, key, sink.handler]
    try:
        where = ingress.route(parts)
    except IngressError as err:
        raise DeadLetter("unroutable", err.message, err.status) from None
    body = msg.value() or b""
    if spec.get("input") is None and not spec.get("raw_input"):
        body = b""  # the handler takes no input
    elif body and not spec.get("raw_input"):
        try:
            strict_loads(body)
        except (ValueError, RecursionError) as err:
            raise DeadLetter("bad_json", f"the payload is not valid JSON: {err}") from None
    workflow = where.handler_kind is HandlerKind.WORKFLOW
    idem = None if workflow else record_key(sub.id, tp[0], tp[1], offset)
    inv = where.invocation_id(idem)
    headers = headers_of(msg, tp, offset)
    invoke = Invoke(str(inv), where.target, body, None, idem, False, headers, where.handler_kind)
    partition_key = where.target.key.encode() if where.target.key is not None else inv.uid
    return Prepared(invoke, inv, inv.partition(ingress.log_partitions), partition_key)


def headers_of(msg: Message, tp: TopicPart, offset: int) -> tuple[tuple[str, str], ...]:
    """The record's own headers, then its Kafka metadata (``kafka.topic``, ...)."""
    out: list[tuple[str, str]] = []
    for name, value in own_headers(msg):
        text = value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value
        out.append((name, text or ""))
    key = msg.key()
    _, timestamp = msg.timestamp()
    out += [
        ("kafka.topic", tp[0]),
        ("kafka.partition", str(tp[1])),
        ("kafka.offset", str(offset)),
        ("kafka.timestamp", str(timestamp)),
        ("kafka.key", key.decode("utf-8", "backslashreplace") if key is not None else ""),
    ]
    return tuple(out)
