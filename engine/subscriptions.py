"""Subscriptions: a Kafka topic connected to a handler, and the byte format they are stored in.

A subscription is Restate's ``kafka://<cluster>/<topic>`` → ``service://<service>/<handler>``.
It is stored as JSON in the compacted ``<cluster>.subscriptions`` topic, keyed by its id; a
tombstone deletes it. The id is derived from source and sink, so that the same pair (an API call
repeated, a handler that declares it in code) is always the same subscription, with the same
consumer group and the same invocation ids: one record, one invocation, whoever reads it again.

The stored form carries ``"v": 1``; a field never changes meaning (a new meaning is a new field
or a new version).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from perdure.engine.errors import EngineError

FORMAT_VERSION = 1

ORDERING_PARALLEL = "parallel"
ORDERING_PARTITION = "partition"

DEFAULT_MAX_IN_FLIGHT = 1000
"""Invocations a subscription keeps in flight at most before it pauses its consumer."""

_OWN_OPTIONS = frozenset({"ordering", "max_in_flight", "dead_letter_topic"})
_RESERVED = frozenset(
    {
        "bootstrap.servers",
        "group.id",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "enable.partition.eof",
    }
)
"""librdkafka settings the subscription owns: its group and its commits are Perdure's."""

_NAME = re.compile(r"[A-Za-z0-9._-]+")


class InvalidSubscription(EngineError):
    """A subscription that cannot be: a malformed URI, an unknown option, a bad value."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where records come from: a topic of a Kafka cluster known to Perdure."""

    cluster: str
    topic: str

    @property
    def uri(self) -> str:
        return f"kafka://{self.cluster}/{self.topic}"


@dataclass(frozen=True, slots=True)
class Sink:
    """The handler every record invokes."""

    service: str
    handler: str

    @property
    def uri(self) -> str:
        return f"service://{self.service}/{self.handler}"


@dataclass(frozen=True, slots=True)
class Subscription:
    """A stored subscription."""

    id: str
    source: Source
    sink: Sink
    options: dict[str, str] = field(default_factory=dict)
    declared: bool = False
    """Declared in code (``@svc.handler(subscribe=...)``) rather than created through the API."""

    @property
    def ordering(self) -> str:
        return self.options.get("ordering", ORDERING_PARALLEL)

    @property
    def max_in_flight(self) -> int:
        return int(self.options.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT))

    @property
    def consumer_settings(self) -> dict[str, str]:
        """The librdkafka settings among the options (``auto.offset.reset``, ...)."""
        return {k: v for k, v in self.options.items() if k not in _OWN_OPTIONS}

    def describe(self) -> dict[str, Any]:
        """Restate's shape of a subscription in the admin API."""
        return {
            "id": self.id,
            "source": self.source.uri,
            "sink": self.sink.uri,
            "options": dict(self.options),
            "declared": self.declared,
        }


def parse_source(text: str) -> Source:
    """``kafka://<cluster>/<topic>``; raises :class:`InvalidSubscription`."""
    m = re.fullmatch(r"kafka://([^/]+)/([^/]+)", text)
    if m is None or not _NAME.fullmatch(m.group(1)) or not _NAME.fullmatch(m.group(2)):
        raise InvalidSubscription(
            f"source {text!r} is not a Kafka topic: expected kafka://<cluster>/<topic>"
        )
    return Source(m.group(1), m.group(2))


def parse_sink(text: str) -> Sink:
    """``service://<service>/<handler>``; raises :class:`InvalidSubscription`."""
    m = re.fullmatch(r"service://([^/]+)/([^/]+)", text)
    if m is None:
        raise InvalidSubscription(
            f"sink {text!r} is not a handler: expected service://<service>/<handler>"
        )
    return Sink(m.group(1), m.group(2))


def check_options(raw: dict[str, Any]) -> dict[str, str]:
    """The options as strings, checked; raises :class:`InvalidSubscription`.

    Perdure's own options are ``ordering`` (``parallel`` or ``partition``), ``max_in_flight``
    (a positive integer) and ``dead_letter_topic``; every other key must be a librdkafka
    consumer setting (they all have a dot), checked by librdkafka when the consumer is made.
    """
    if not isinstance(raw, dict):
        raise InvalidSubscription("options must be an object of settings")
    options: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, (str, int, float)):
            raise InvalidSubscription(f"option {key!r} must be a string or a number")
        text = str(value)
        if key in _RESERVED:
            raise InvalidSubscription(f"option {key!r} is set by Perdure and cannot be given")
        if key not in _OWN_OPTIONS and "." not in key:
            raise InvalidSubscription(
                f"unknown option {key!r}: Perdure's are ordering, max_in_flight and "
                "dead_letter_topic; librdkafka consumer settings look like auto.offset.reset"
            )
        options[key] = text
    if options.get("ordering", ORDERING_PARALLEL) not in (ORDERING_PARALLEL, ORDERING_PARTITION):
        raise InvalidSubscription("option ordering must be 'parallel' or 'partition'")
    if "max_in_flight" in options:
        n = options["max_in_flight"]
        if not n.isdigit() or int(n) < 1:
            raise InvalidSubscription("option max_in_flight must be a positive integer")
    topic = options.get("dead_letter_topic")
    if topic is not None and not _NAME.fullmatch(topic):
        raise InvalidSubscription(f"option dead_letter_topic {topic!r} is not a topic name")
    return options


def subscription_id(source: Source, sink: Sink) -> str:
    """The id of the subscription from ``source`` to ``sink`` (``sub_`` and 26 characters)."""
    h = hashlib.blake2b(digest_size=16, person=b"perdure-sub-v1")
    for part in (source.uri, sink.uri):
        data = part.encode()
        h.update(len(data).to_bytes(4, "big"))
        h.update(data)
    return "sub_" + base64.b32encode(h.digest()).decode().rstrip("=").lower()


def record_key(subscription: str, topic: str, partition: int, offset: int) -> str:
    """The idempotency key of the invocation a record starts: one record, one invocation."""
    return f"{subscription}/{topic}/{partition}/{offset}"


def encode(sub: Subscription) -> bytes:
    """The stored form."""
    doc = {
        "v": FORMAT_VERSION,
        "id": sub.id,
        "source": sub.source.uri,
        "sink": sub.sink.uri,
        "options": sub.options,
        "declared": sub.declared,
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def decode(data: bytes) -> Subscription:
    """The stored form back; raises :class:`InvalidSubscription` for what it cannot read."""
    try:
        doc = json.loads(data)
        if doc.get("v") != FORMAT_VERSION:
            raise InvalidSubscription(f"subscription format {doc.get('v')!r} is not known")
        return Subscription(
            id=str(doc["id"]),
            source=parse_source(doc["source"]),
            sink=parse_sink(doc["sink"]),
            options={str(k): str(v) for k, v in doc.get("options", {}).items()},
            declared=bool(doc.get("declared", False)),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise InvalidSubscription(f"unreadable subscription: {err}") from err
