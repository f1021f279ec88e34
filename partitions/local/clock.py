"""The virtual clock of a test runtime, and the timers that wait on it.

Time moves only when the runtime moves it: when a test advances it, or (auto-advance) when the
test waits for an outcome and nothing else can run. Records appended to the in-memory log are
stamped with it, so the state machine, which reads time only from record timestamps, sees the
same days pass that the test asked for.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(order=True, frozen=True, slots=True)
class Due:
    """Something to do at ``at_ms``: fire entry ``index``'s timer, or start a retry (index -1)."""

    at_ms: int
    seq: int
    invocation_id: str = field(compare=False)
    index: int = field(compare=False)

    @property
    def is_retry(self) -> bool:
        return self.index == RETRY


RETRY = -1
"""The ``index`` of a :class:`Due` that starts an invocation's next attempt after a failure."""


class VirtualClock:
    """Milliseconds since the epoch, moved forward only by the runtime; and what is due when.

    With ``wall``, it reads the wall clock instead (``perdure dev --embedded``): timers are
    due when their time comes, and nothing moves it.
    """

    def __init__(self, start: datetime | None = None, *, wall: bool = False) -> None:
        at = start or datetime.now(UTC)
        self.wall = wall
        self._now_ms = int(at.timestamp() * 1000)
        self._due: list[Due] = []
        self._seq = itertools.count()

    @property
    def now_ms(self) -> int:
        return int(time.time() * 1000) if self.wall else self._now_ms

    def time(self) -> float:
        """Seconds since the epoch (what ``ctx.time()`` reads)."""
        return self.now_ms / 1000

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms / 1000, UTC)

    def move_to(self, at_ms: int) -> None:
        if not self.wall:
            self._now_ms = max(self._now_ms, at_ms)

    def schedule(self, at_ms: int, invocation_id: str, index: int) -> None:
        heapq.heappush(self._due, Due(at_ms, next(self._seq), invocation_id, index))

    def next_due_ms(self) -> int | None:
        return self._due[0].at_ms if self._due else None

    def take_due(self) -> list[Due]:
        """Everything due by now, in time order."""
        out = []
        while self._due and self._due[0].at_ms <= self.now_ms:
            out.append(heapq.heappop(self._due))
        return out

    def clear_timers(self) -> None:
        """Forgets the entry timers (a new leader re-reads them from the store); keeps retries."""
        self._due = [d for d in self._due if d.is_retry]
        heapq.heapify(self._due)
