"""SimLoop: an asyncio event loop on virtual time, for the deterministic simulator.

The loop never waits: when nothing is ready it jumps its clock to the next scheduled callback.
Callbacks run in the order asyncio guarantees (FIFO among the ready ones), so one seed gives one
run: the simulator's randomness comes only from its seeded generator (latencies, faults, the
workload), never from the machine's timing. ``loop.time()`` is virtual, so every
``asyncio.sleep``, ``call_later`` and ``wait_for`` of the engine runs on it unchanged.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any


class SimulationStuck(Exception):
    """Nothing is ready and nothing is scheduled: every task waits for ever."""


class _VirtualSelector(selectors.BaseSelector):
    """A selector with no file to watch: a select moves the loop's clock by its timeout."""

    def __init__(self) -> None:
        self._map: dict[Any, selectors.SelectorKey] = {}
        self.loop: SimLoop | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, _fd(fileobj), events, data)
        self._map[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._map.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        assert self.loop is not None
        if timeout is None:
            raise SimulationStuck("no callback is ready or scheduled")
        self.loop.advance(timeout)
        return []

    def get_map(self) -> Any:
        return self._map

    def close(self) -> None:
        self._map.clear()


def _fd(fileobj: Any) -> int:
    return fileobj if isinstance(fileobj, int) else int(fileobj.fileno())


class SimLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock is virtual: seconds from 0, moved only by waiting."""

    def __init__(self) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Moves the clock forward (the selector does, in place of a wait)."""
        if seconds > 0:
            self._now += seconds
