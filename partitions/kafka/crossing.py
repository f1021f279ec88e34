"""LoopCrossing: how the worker's processor thread reaches the invoker's event loop.

Kafka's consumer runs on a thread of its own (the worker's adapter); the partition runtime's
calls into the invoker cross over here. Other ways of running the runtime (the local partition,
the simulator) are on the invoker's loop already and call it directly.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

log = logging.getLogger("perdure.worker")


Call = tuple[Callable[..., None], tuple[object, ...]]


class LoopCrossing:
    """Runs calls on the invoker's event loop, in order; the processor's batch goes at once.

    A wake-up of the loop per action cost a syscall and a thread switch each: while the
    processor applies a batch (between :meth:`gather` and :meth:`flush`) its calls are
    gathered and handed over in one. Calls from any other thread, or outside a batch, go at
    once.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._gathered: list[Call] | None = None
        self._processor_thread = 0

    def gather(self) -> None:
        """From the processor's thread: gather the calls until :meth:`flush`."""
        self._processor_thread = threading.get_ident()
        self._gathered = []

    def call(self, fn: Callable[..., None], *args: object) -> None:
        """Runs ``fn(*args)`` on the loop, after every call made before."""
        if self._gathered is not None and threading.get_ident() == self._processor_thread:
            self._gathered.append((fn, args))
            return
        self.loop.call_soon_threadsafe(fn, *args)

    def flush(self) -> None:
        """Hands the gathered calls over in one wake-up of the loop."""
        calls, self._gathered = self._gathered, None
        if calls:
            self.loop.call_soon_threadsafe(_run_all, calls)


def _run_all(calls: list[Call]) -> None:
    # Each on its own, as separate loop callbacks would be: one that fails stops no other.
    for fn, args in calls:
        try:
            fn(*args)
        except Exception:
            log.exception("on the invoker's loop: %s failed", getattr(fn, "__name__", fn))
