"""The storage interface the state machine writes through, and an in-memory implementation.

The worker implements :class:`PartitionTxn` over RocksDB (one write batch per applied batch of
records); tests use :class:`MemoryTxn`. The state machine sees nothing else of storage.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Protocol


class PartitionReader(Protocol):
    """Reads of one partition's state."""

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None."""
        ...

    def scan(self, prefix: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Keys starting with ``prefix`` (and below ``end`` if given), in byte order."""
        ...


class PartitionTxn(PartitionReader, Protocol):
    """Reads and writes of one partition's state, visible to later reads in the same batch."""

    def put(self, key: bytes, value: bytes) -> None:
        """Sets ``key``."""
        ...

    def delete(self, key: bytes) -> None:
        """Removes ``key``."""
        ...


class MemoryTxn:
    """A sorted in-memory store: the reference implementation used by the engine's tests."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)

    def scan(self, prefix: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        keys = sorted(self.data)
        i = bisect.bisect_left(keys, prefix)
        for key in keys[i:]:
            if not key.startswith(prefix) or (end is not None and key >= end):
                break
            yield key, self.data[key]

    def scan_range(
        self, start: bytes, end: bytes, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        keys = sorted(k for k in self.data if start <= k < end)
        for key in reversed(keys) if reverse else keys:
            yield key, self.data[key]
