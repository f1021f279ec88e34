"""The clock ``ctx.time()`` reads: the wall clock, or the virtual clock of a test runtime.

A context variable, so that a test runtime's clock reaches exactly the handler tasks it starts
(tasks and ``asyncio.to_thread`` copy the context they are created in) and nothing else in
the process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar, Token

_clock: ContextVar[Callable[[], float]] = ContextVar("perdure_clock", default=time.time)


def now() -> float:
    """Seconds since the epoch, from the clock in use."""
    return _clock.get()()


def use(clock: Callable[[], float]) -> Token[Callable[[], float]]:
    """Makes ``clock`` the clock of this context and of the tasks created in it."""
    return _clock.set(clock)


def restore(token: Token[Callable[[], float]]) -> None:
    """Puts back the clock :func:`use` replaced."""
    _clock.reset(token)
