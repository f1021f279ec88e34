"""The storage interface the state machine writes through, and an in-memory implementation.

The worker implements :class:`PartitionTxn` over RocksDB (one write batch per applied batch of
records); tests use :class:`MemoryTxn`. The state machine sees nothing else of storage.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any, Protocol

from sortedcontainers import SortedDict

from perdure.engine.status_cache import StatusCache


class PartitionReader(Protocol):
    """Reads of one partition's state."""

    statuses: StatusCache | None
    """The partition's cache of decoded statuses (engine/status_cache.py), or None."""

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

    def savepoint(self) -> None:
        """Remembers the state as of now: :meth:`rollback` undoes every write after it.

        One savepoint at a time: a new one replaces the last (the state machine takes one
        per record, engine/rejection.py).
        """
        ...

    def rollback(self) -> None:
        """Undoes every write since the last :meth:`savepoint`."""
        ...


ABSENT = object()
"""In an undo log: the key had no value (or no overlaid value) at the savepoint."""


class UndoLog:
    """The values keys had at a savepoint, taken at each key's first write after it.

    Cheap enough for every record: one dict lookup per write, no read of the store.
    """

    __slots__ = ("before",)

    def __init__(self) -> None:
        self.before: dict[bytes, object] = {}

    def note(self, key: bytes, current: MutableMapping[bytes, Any]) -> None:
        """Remembers ``key``'s value in ``current`` unless it was remembered already."""
        if key not in self.before:
            self.before[key] = current.get(key, ABSENT)

    def clear(self) -> None:
        """Forgets what it remembered: a new savepoint."""
        self.before.clear()

    def undo(self, current: MutableMapping[bytes, Any]) -> list[bytes]:
        """Puts ``current`` back as it was; returns the keys it had not held then."""
        gone = []
        for key, value in self.before.items():
            if value is ABSENT:
                current.pop(key, None)
                gone.append(key)
            else:
                current[key] = value
        self.before.clear()
        return gone


class MemoryTxn:
    """A sorted in-memory store: the reference implementation used by the engine's tests."""

    def __init__(self) -> None:
        self.data: SortedDict[bytes, bytes] = SortedDict()
        self._undo = UndoLog()
        self.statuses: StatusCache | None = StatusCache()

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.data.get(key)
        return value

    def put(self, key: bytes, value: bytes) -> None:
        self._undo.note(key, self.data)
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self._undo.note(key, self.data)
        self.data.pop(key, None)

    def savepoint(self) -> None:
        self._undo.clear()

    def rollback(self) -> None:
        self._undo.undo(self.data)

    def scan(self, prefix: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        # The keys in order from the prefix on (a sorted dict: no sort per scan), listed first
        # so that a caller may write while it iterates.
        for key in list(self.data.irange(minimum=prefix, maximum=end, inclusive=(True, False))):
            if not key.startswith(prefix):
                break
            if key in self.data:
                yield key, self.data[key]

    def scan_range(
        self, start: bytes, end: bytes, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        keys = list(self.data.irange(minimum=start, maximum=end, inclusive=(True, False)))
        for key in reversed(keys) if reverse else keys:
            yield key, self.data[key]
