"""Gives memory that bulk work freed back to the operating system (glibc's ``malloc_trim``).

A backup or a restore moves the whole state of a partition through the heap in 1 MiB chunks,
from several threads (librdkafka's, the backup's, the processor's). glibc keeps what they freed
in its per-thread arenas, so without a trim the worker's RSS stays at the high-water mark of
the largest state it ever copied: it grows with the retained state although nothing is alive.
Elsewhere than on glibc this does nothing.

It also caps glibc's arenas. glibc gives each thread that finds the arenas busy one of its own,
up to eight per core, and a freed chunk goes back to the arena it came from: RocksDB's flush
and compaction threads, librdkafka's and the processors' each keep a heap whose free chunks
only that heap reuses. With a block cache churning through them, the sum grows with the
state the worker reads, though what is alive is bounded. Two arenas are shared by every
thread (the worker's threads spend their time in Kafka and RocksDB calls, not contending in
``malloc``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable

_M_ARENA_MAX = -8
"""``mallopt``'s parameter number for the arena cap (glibc's malloc.h)."""


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018 - glibc's, or this is another libc
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def limit_arenas(count: int) -> bool:
    """Caps glibc's malloc arenas at ``count`` (0 keeps glibc's default).

    Called before the worker starts its threads, since arenas made before stay. An explicit
    ``MALLOC_ARENA_MAX`` in the environment wins. Returns whether the cap was set.
    """
    libc = _libc()
    if count <= 0 or libc is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, count))


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    libc = _libc()
    if libc is None:
        return None  # not glibc
    trim: Callable[[int], int] = libc.malloc_trim
    return trim


def release_free_memory() -> None:
    """Returns the heap's free pages to the OS (every arena; takes milliseconds)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
