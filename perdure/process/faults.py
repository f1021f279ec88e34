"""Fault points: named moments where a test can freeze a worker or an admin process and
``kill -9`` it there (test instrumentation of the processes, never used by the state machine).

``PERDURE_FAULT_STOP_AT=backup-chunk,trim`` arms points; the first time the worker reaches an
armed point it logs ``fault point NAME: stopping`` and sends itself ``SIGSTOP``. The test then
kills it (or lets it go on with ``SIGCONT``). Unarmed points cost one set lookup. They exist
because the moments that matter (half a backup written, a trim in flight, half a store
restored) last milliseconds: a test cannot hit them reliably from outside.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger("perdure.faults")

_ARMED = frozenset(os.environ.get("PERDURE_FAULT_STOP_AT", "").split(",")) - {""}
_reached: set[str] = set()


def armed(name: str) -> bool:
    """Whether a test armed ``name`` (to set up the moment before reaching it)."""
    return name in _ARMED


def reach(name: str) -> None:
    """Freezes the process here if ``name`` is armed and was not reached before."""
    if name not in _ARMED or name in _reached:
        return
    _reached.add(name)
    log.warning("fault point %s: stopping", name)
    for handler in logging.getLogger().handlers:
        handler.flush()
    # Sent to this thread, not to the process: a process-wide SIGSTOP is taken by whichever
    # thread the kernel wakes first, and on a loaded machine this one ran on for half a second
    # before the stop landed (past the moment under test). A thread-directed stop is taken by
    # this thread before it returns to Python; the stop then spreads to every thread.
    signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
