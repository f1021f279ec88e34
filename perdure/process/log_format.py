"""``--log-format json``: one JSON object per log line, for log pipelines (Loki, ELK).

Fields: ``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``pid``, ``message``, ``exception``
(the traceback, if any), ``invocation_id`` when the message names one, so that every line
about an invocation can be found by its id, and ``event`` on the lifecycle lines of
``perdure.invocations`` (invoked, started, resumed, suspended, retry-scheduled, completed, ...).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re

_INVOCATION_ID = re.compile(r"\binv_[a-z0-9]{16,}\b")


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        doc: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": message,
        }
        given = getattr(record, "invocation_id", None)
        found = None if given else _INVOCATION_ID.search(message)
        if given or found is not None:
            doc["invocation_id"] = given or found.group(0)  # type: ignore[union-attr]
        event = getattr(record, "event", None)
        if event:
            doc["event"] = event
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def configure(level: str, fmt: str) -> None:
    """Sets up the process's logging: ``fmt`` is ``text`` or ``json``."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {fmt!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    # httpx logs every request at INFO: one per exchange with a deployment, noise at that level.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Lifecycle lines are many (several per invocation, ~370 bytes each): their own level lets
    # a busy cluster keep INFO for the rest.
    lifecycle = os.environ.get(INVOCATION_LOG_LEVEL_ENV)
    if lifecycle:
        logging.getLogger("perdure.invocations").setLevel(lifecycle.upper())


INVOCATION_LOG_LEVEL_ENV = "PERDURE_INVOCATION_LOG_LEVEL"
"""The level of the ``perdure.invocations`` lifecycle lines (unset: the process's level)."""
