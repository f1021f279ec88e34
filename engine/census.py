"""How many invocations of a partition are where, now: the in-flight gauges' source.

Counted from a snapshot of the store, off the processor thread, every few seconds: the running
index (running, suspended, backing-off), the object keys' inboxes (pending: the inbox depth)
and the start timers of delayed invocations (scheduled). Completed ones are not counted here;
the invocation counters say how many ended.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from perdure.engine import keys, queries
from perdure.engine.status import get_status
from perdure.engine.storage import PartitionReader

IN_FLIGHT = ("scheduled", "pending", "running", "suspended", "backing-off")
"""The statuses counted, in the order operators read them."""

BUDGET = 50_000
"""Keys one census reads at most; past it the counts are lower bounds (``complete`` is False)."""


@dataclass
class Census:
    """Invocations of one partition by status, as of one snapshot."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(IN_FLIGHT, 0))
    complete: bool = True
    """False if the budget ran out before every in-flight invocation was counted."""


def take(view: PartitionReader, now_ms: int, budget: int = BUDGET) -> Census:
    """Counts the in-flight invocations of the partition read by ``view``."""
    census = Census()
    left = budget
    for key, _ in _limited(view.scan(keys.RUNNING), budget):
        left -= 1
        status = get_status(view, keys.id_of_running_key(key))
        if status is not None:
            name = queries.status_of(status, now_ms)
            if name in census.counts:
                census.counts[name] += 1
    for _ in _limited(view.scan(keys.INBOX), left):
        left -= 1
        census.counts["pending"] += 1
    for key, _ in _limited(view.scan(keys.TIMER), left):
        left -= 1
        if keys.timer_of_key(key)[2] == keys.SCHEDULED_START:
            census.counts["scheduled"] += 1
    census.complete = left > 0
    return census


def _limited(items: Iterator[tuple[bytes, bytes]], budget: int) -> Iterator[tuple[bytes, bytes]]:
    if budget <= 0:
        return
    for n, item in enumerate(items, 1):
        yield item
        if n >= budget:
            return
