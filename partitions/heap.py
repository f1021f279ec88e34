"""Gives memory that bulk work freed back to the operating system (glibc's ``malloc_trim``).

A backup or a restore moves the whole state of a partition through the heap in 1 MiB chunks,
from several threads (librdkafka's, the backup's, the processor's). glibc keeps what they freed
in its per-thread arenas, so without a trim the worker's RSS stays at the high-water mark of
the largest state it ever copied: it grows with the retained state although nothing is alive.
Elsewhere than on glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None  # not glibc
    return trim


def release_free_memory() -> None:
    """Returns the heap's free pages to the OS (every arena; takes milliseconds)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
