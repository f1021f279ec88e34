"""The librdkafka settings every client of Perdure's own Kafka gets: security, tuning, anything.

``PERDURE_KAFKA_CONFIG`` holds them: a JSON object of librdkafka properties, or ``@path`` to a
JSON file (keep passwords out of process listings that way), e.g.::

    {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
     "sasl.username": "perdure", "sasl.password": "...", "ssl.ca.location": "/etc/ca.pem"}

Every process reads it (``perdure worker``, ``ingress``, ``admin`` and the CLI's ``--kafka-config``
sets it for them) and every producer, consumer and admin client it makes for the cluster at its
bootstrap address gets it, under the settings Perdure needs for its guarantees: those
(:data:`RESERVED`) are refused with an error at start rather than silently overridden. The
``default`` entry of ``PERDURE_KAFKA_CLUSTERS`` (subscriptions, publishing) gets it too.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from perdure.engine.cluster import MAX_RECORD_BYTES
from perdure.process.client_logs import CLIENT_LOGGER

ENV = "PERDURE_KAFKA_CONFIG"

RESERVED = frozenset(
    {
        "bootstrap.servers",  # --bootstrap / PERDURE_BOOTSTRAP
        "group.id",
        "group.instance.id",
        "transactional.id",
        "enable.idempotence",
        "acks",
        "isolation.level",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "auto.offset.reset",
        "partition.assignment.strategy",
        "logger",
        "error_cb",
        "on_delivery",
        "stats_cb",
    }
)
"""What Perdure sets itself: its exactly-once and single-writer guarantees depend on them."""


def heartbeat_interval_ms(session_timeout_ms: int) -> int:
    """How often a group member heartbeats, for a given session timeout.

    With Kafka's classic group protocol a member learns that a rebalance began only from a
    heartbeat's answer, so each hand-over (a worker that joins, or leaves on SIGTERM) waits up
    to one interval for every other member: a sixth of the session timeout, but at most 1 s
    whatever the timeout (a 45 s session timeout used to mean 7.5 s pauses at each hand-over),
    and at least 100 ms.

    Args:
        session_timeout_ms: the group's ``session.timeout.ms``.

    Returns:
        The ``heartbeat.interval.ms`` to set.
    """
    return max(100, min(session_timeout_ms // 6, 1000))


class KafkaConfigError(ValueError):
    """``PERDURE_KAFKA_CONFIG`` does not hold usable settings."""


def parse(text: str) -> dict[str, str]:
    """The settings in ``text`` (JSON, or ``@path`` of a JSON file).

    Raises:
        KafkaConfigError: not a JSON object of scalars, an unreadable file, a reserved key.
    """
    source = ENV
    if text.startswith("@"):
        source = f"{ENV} file {text[1:]}"
        try:
            text = Path(text[1:]).read_text()
        except OSError as err:
            raise KafkaConfigError(f"{source}: {err.strerror}") from None
    try:
        given: Any = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as err:
        raise KafkaConfigError(f"{source} is not JSON: {err}") from None
    if not isinstance(given, dict):
        raise KafkaConfigError(f"{source} must be a JSON object of librdkafka properties")
    out: dict[str, str] = {}
    for key, value in given.items():
        if key in RESERVED:
            raise KafkaConfigError(
                f"{source}: {key!r} is set by Perdure itself and cannot be given"
            )
        if isinstance(value, (dict, list)) or value is None:
            raise KafkaConfigError(f"{source}: {key!r} must be a string, number or boolean")
        out[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


@functools.cache
def _parsed(text: str) -> dict[str, str]:
    return parse(text)


def extra() -> dict[str, str]:
    """The settings of ``PERDURE_KAFKA_CONFIG`` (read when it changes; parsed once per text)."""
    return dict(_parsed(os.environ.get(ENV, "")))


DEFAULTS: dict[str, Any] = {
    # librdkafka leaves Nagle's algorithm on: a small request waits for the ACK of the one
    # before it, and every record of Perdure's is a small request on the hot path.
    "socket.nagle.disable": True,
}
"""Perdure's defaults for every client of its Kafka; ``PERDURE_KAFKA_CONFIG`` may change them."""


def client_settings(bootstrap: str, **own: Any) -> dict[str, Any]:
    """Settings of a client of Perdure's Kafka at ``bootstrap``: Perdure's defaults, the
    configured ones, then ``own`` (Perdure's, which win)."""
    return {**DEFAULTS, **extra(), "bootstrap.servers": bootstrap, **own}


CONSUMER_QUEUE_KBYTES = 16 * 1024
"""What a worker's consumers fetch ahead, at most (librdkafka's ``queued.max.messages.kbytes``,
64 MiB by default per consumer). Reading a backup or a long log suffix fills the queue to its
bound; 16 MiB keeps a restore's memory small and the fetches large enough for its speed."""


def producer_settings(bootstrap: str) -> dict[str, object]:
    """librdkafka settings of every Perdure producer: idempotent, acks=all, low latency."""
    return {
        **DEFAULTS,
        **extra(),
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 0,
        "message.max.bytes": MAX_RECORD_BYTES,
        "message.timeout.ms": 15000,
        # Its log lines go through the process's logging, rate-limited (client_logs.py).
        "logger": CLIENT_LOGGER,
    }
