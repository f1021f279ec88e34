"""The outbox's byte format: records for other Kafka clusters, and the forward positions.

A record a handler publishes to a cluster other than Perdure's own is written to the outbox
topic (``<cluster>.outbox``) in the handler's transaction, with its destination in two headers
that come first; the forwarder sends it on without them. The forward positions topic, on each
destination cluster, holds per outbox partition the next offset to forward there. These formats
never change meaning; a new one gets a new version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from perdure.engine.errors import EngineError
from perdure.engine.model import OutgoingRecord

FORWARD_CLUSTER_HEADER = "perdure.forward.cluster"
FORWARD_TOPIC_HEADER = "perdure.forward.topic"
POSITION_VERSION = 1


class OutboxFormatError(EngineError):
    """An outbox or position record that is not in this format."""


def outbox_headers(record: OutgoingRecord) -> list[tuple[str, str | bytes | None]]:
    """The headers of ``record`` in the outbox: its destination, then its own."""
    return [
        (FORWARD_CLUSTER_HEADER, record.cluster.encode()),
        (FORWARD_TOPIC_HEADER, record.topic.encode()),
        *record.headers,
    ]


def destination(
    headers: Sequence[tuple[str, str | bytes | None]],
) -> tuple[str, str, list[tuple[str, str | bytes | None]]]:
    """(cluster, topic, the record's own headers) of an outbox record.

    Raises:
        OutboxFormatError: the destination headers are missing.
    """
    if (
        len(headers) < 2
        or headers[0][0] != FORWARD_CLUSTER_HEADER
        or headers[1][0] != FORWARD_TOPIC_HEADER
    ):
        raise OutboxFormatError("an outbox record without its destination headers")
    cluster, topic = headers[0][1] or b"", headers[1][1] or b""
    if isinstance(cluster, bytes):
        cluster = cluster.decode()
    if isinstance(topic, bytes):
        topic = topic.decode()
    return cluster, topic, list(headers[2:])


def position_key(partition: int) -> bytes:
    """The key of outbox partition ``partition``'s position."""
    return str(partition).encode()


def encode_position(next_offset: int) -> bytes:
    """A position: every outbox record below ``next_offset`` was forwarded (or skipped)."""
    return json.dumps({"v": POSITION_VERSION, "next": next_offset}).encode()


def decode_position(value: bytes) -> int:
    """The next offset a position names.

    Raises:
        OutboxFormatError: not a position of a known version.
    """
    try:
        data = json.loads(value)
        if data.get("v") != POSITION_VERSION:
            raise OutboxFormatError(f"forward position of version {data.get('v')!r}")
        return int(data["next"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise OutboxFormatError(f"not a forward position: {err}") from err
