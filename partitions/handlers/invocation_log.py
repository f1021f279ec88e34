"""One log line per event of an invocation's life, each with the invocation's id.

The events, on logger ``perdure.invocations`` at INFO (``--log-level WARNING`` silences them):

- ``invoked``: the partition's leader recorded a new invocation (running, pending behind its
  object key, or scheduled for later);
- ``started`` / ``resumed``: an attempt's handler starts from the top, or replays a journal
  (after a suspension, a retry or a failover);
- ``suspended``: the handler waits longer than a task is kept and its task ends;
- ``retry-scheduled``: an attempt failed and the next one is due after a back-off (WARNING,
  with the stack, for the first failure of an invocation);
- ``completed``, ``failed``, ``cancelled``, ``killed``: how it ended.

Only a partition's leader logs them, so a replay of history after a failover does not log it
again. With ``--log-format json`` each line carries ``invocation_id`` and ``event`` fields.
"""

from __future__ import annotations

import logging

log = logging.getLogger("perdure.invocations")

ENDED = frozenset({"completed", "failed", "cancelled", "killed"})


def event(
    name: str, invocation_id: str, detail: str = "", *args: object, level: int = logging.INFO
) -> None:
    """Logs event ``name`` of ``invocation_id``; ``detail`` is a %-format of ``args``.

    Formatting is left to logging, so a level that is off costs the hot path one check.
    """
    if log.isEnabledFor(level):
        log.log(
            level,
            "invocation %s %s" + (": " + detail if detail else ""),
            invocation_id,
            name,
            *args,
            extra={"event": name, "invocation_id": invocation_id},
        )
