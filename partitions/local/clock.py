"""The virtual clock of a test runtime.

Time moves only when the runtime moves it: when a test advances it, or (auto-advance) when the
test waits for an outcome and nothing else can run. Records appended to the in-memory log are
stamped with it, so the state machine, which reads time only from record timestamps, sees the
same days pass that the test asked for.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class VirtualClock:
    """Milliseconds since the epoch, moved forward only by the runtime; and what is due when.

    With ``wall``, it reads the wall clock instead (``perdure dev --embedded``): timers are
    due when their time comes, and nothing moves it.
    """

    def __init__(self, start: datetime | None = None, *, wall: bool = False) -> None:
        at = start or datetime.now(UTC)
        self.wall = wall
        self._now_ms = int(at.timestamp() * 1000)

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

    def view(self) -> ClockView:
        """This clock as the partition runtime reads it (partitions/runtime/ports.py)."""
        return ClockView(self)


class ClockView:
    """A :class:`VirtualClock` as a ``RuntimeClock``: its milliseconds, and its seconds as the
    monotonic clock of intervals (virtual time never goes back either)."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock

    def now_ms(self) -> int:
        return self._clock.now_ms

    def monotonic(self) -> float:
        return self._clock.now_ms / 1000
