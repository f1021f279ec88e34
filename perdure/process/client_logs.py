"""Kafka client log lines, rate-limited: what librdkafka says reaches the process's log, once.

With the broker down, librdkafka logs every failed connection attempt of every client
(~3,000 lines in 50 s for one ingress), which buries what an operator needs to read. Every
Perdure client logs through :data:`CLIENT_LOGGER` (``perdure.librdkafka``), whose filter lets
one line per (facility, level) through every :data:`INTERVAL_S` and says how many it dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

INTERVAL_S = 10.0


class RateLimit(logging.Filter):
    """Lets a line through if none of its kind went through in the last ``interval_s``."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple[int, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        # confluent-kafka logs ("%s [%s] %s", facility, client, message).
        kind = str(record.args[0]) if isinstance(record.args, tuple) and record.args else ""
        key = (record.levelno, kind or str(record.msg)[:40])
        now = time.monotonic()
        with self._lock:
            last, dropped = self._last.get(key, (0.0, 0))
            if now - last < self.interval_s:
                self._last[key] = (last, dropped + 1)
                return False
            self._last[key] = (now, 0)
        if dropped:
            record.msg = (
                f"{record.msg} ({dropped} more like it in the last {self.interval_s:.0f} s)"
            )
        return True


CLIENT_LOGGER = logging.getLogger("perdure.librdkafka")
CLIENT_LOGGER.addFilter(RateLimit())


class ConnectionTrouble:
    """A client's ``error_cb``: remembers why its connections were refused, in the client's words.

    A request to an unreachable cluster fails with only "Broker transport failure"; the reason
    (refused credentials, a TLS error, a name that does not resolve) reaches ``error_cb``.
    :meth:`explain` adds it to the request's error, for the messages operators read.
    """

    REASONS = frozenset({"_AUTHENTICATION", "_SSL", "_RESOLVE"})
    """librdkafka error names that say why a connection failed."""

    def __init__(self) -> None:
        self.last = ""

    def __call__(self, err: Any) -> None:
        if err.name() in self.REASONS:
            self.last = str(err.str())

    def explain(self, error: object, client: Any = None) -> str:
        """``error``, with the client's reason after it if it saw one.

        Args:
            error: the failed request's error (a ``KafkaException`` or text).
            client: the client whose ``error_cb`` this is; librdkafka queues error events
                until the client is polled, so it is polled here to hear them.
        """
        if client is not None:
            client.poll(0)
        text = error.args[0].str() if isinstance(error, Exception) and _has_str(error) else error
        return f"{text}; {self.last}" if self.last else str(text)


def _has_str(error: Exception) -> bool:
    return bool(error.args) and hasattr(error.args[0], "str")
