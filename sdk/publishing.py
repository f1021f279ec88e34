"""What ``ctx.publish`` sends: a Kafka record built from the handler's value, key and headers.

The record is published by the worker in one Kafka transaction with the journal entry that
records it (``EntryKind.PUBLISH``), so a ``read_committed`` reader sees it exactly once: a crash
before the commit aborts both and the replay publishes again; after the commit the replay finds
the entry and does not. Every record carries ``perdure.publish.id`` (invocation id and entry
index) for readers that read uncommitted records or want to check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perdure.engine.model import OutgoingRecord
from perdure.sdk import serde
from perdure.sdk.errors import TerminalError

PUBLISH_ID_HEADER = "perdure.publish.id"
"""The header naming the publishing step: ``<invocation id>:<entry index>``."""

_MAX_TOPIC = 249  # Kafka's own limit on a topic name


def outgoing_record(
    topic: str,
    value: Any,
    key: str | bytes | None,
    headers: Mapping[str, str | bytes] | None,
    publish_id: str,
    cluster: str = "default",
) -> OutgoingRecord:
    """Builds the record: ``bytes`` go as they are, anything else (``str`` too) as JSON.

    Raises:
        TerminalError: the topic name is not one Kafka accepts, or the value cannot be encoded
            (a mistake in the handler's code: retrying would not help).
    """
    if not topic or len(topic) > _MAX_TOPIC or topic in (".", ".."):
        raise TerminalError(f"ctx.publish: {topic!r} is not a Kafka topic name", 400)
    if not all(c.isascii() and (c.isalnum() or c in "._-") for c in topic):
        raise TerminalError(
            f"ctx.publish: {topic!r} is not a Kafka topic name (letters, digits, '.', '_', '-')",
            400,
        )
    # Anything but bytes is JSON, a str too: what a subscription hands to a handler taking
    # the same type (bytes stay bytes both ways).
    payload = value if isinstance(value, bytes) else serde.encode(value)
    raw_key = key.encode() if isinstance(key, str) else key
    encoded: list[tuple[str, bytes]] = []
    for name, header in (headers or {}).items():
        if name == PUBLISH_ID_HEADER or name.startswith("perdure.forward."):
            raise TerminalError(f"ctx.publish: the header {name} is Perdure's own", 400)
        encoded.append((name, header.encode() if isinstance(header, str) else bytes(header)))
    encoded.append((PUBLISH_ID_HEADER, publish_id.encode()))
    if not cluster:
        raise TerminalError("ctx.publish: the cluster name is empty", 400)
    return OutgoingRecord(topic, payload, raw_key, tuple(encoded), cluster)
