"""MemoryStore: a partition's store held in memory, with the interface of the RocksDB one.

The TestRuntime, ``perdure dev --embedded`` (which replays its file log at start) and the
simulator keep their stores here. Writes go through the same :class:`~partitions.store.StoreBatch`
as RocksDB's, committed with the applied offset in one step, so the processor's contract (data
and offset together, nothing of a failed batch kept) is the same one.
"""

from __future__ import annotations

from collections.abc import Iterator

from sortedcontainers import SortedDict

from perdure.engine import keys
from perdure.engine.status_cache import StatusCache
from perdure.partitions.storage.store import StoreBatch


class MemoryStore:
    """A sorted dict of committed keys, and the offset of the last record applied to it."""

    def __init__(self) -> None:
        self.data: SortedDict = SortedDict()
        self._applied = -1
        self.statuses: StatusCache | None = StatusCache()

    def applied_offset(self) -> int:
        """The offset of the last applied record, or -1 for an empty store."""
        return self._applied

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.data.get(key)
        return value

    def scan(self, prefix: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        # A list of the keys first (the caller may commit while it iterates), of the prefix's
        # range only: the keys after it are not listed.
        upper = _after_prefix(prefix)
        if end is not None and (upper is None or end < upper):
            upper = end
        for key in list(self.data.irange(minimum=prefix, maximum=upper, inclusive=(True, False))):
            if key in self.data:
                yield key, self.data[key]

    def scan_range(
        self, start: bytes, end: bytes | None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        found = list(self.data.irange(minimum=start, maximum=end, inclusive=(True, False)))
        for key in reversed(found) if reverse else found:
            yield key, self.data[key]

    def snapshot(self) -> MemoryStore:
        """A copy as of now (queries read it while the partition goes on)."""
        copy = MemoryStore()
        copy.data = self.data.copy()
        copy._applied = self._applied
        copy.statuses = self.statuses
        return copy

    def release(self) -> None:
        """Nothing to release (the snapshot interface of the RocksDB store)."""

    def begin(self) -> StoreBatch:
        return StoreBatch(self)

    def commit(self, batch: StoreBatch, applied_offset: int) -> None:
        """Writes ``batch`` and the applied offset in one step."""
        for key, value in batch.overlay.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
        self._applied = applied_offset
        self.data[keys.META_APPLIED_OFFSET] = keys.encode_int(applied_offset)

    def estimate_keys(self) -> int:
        return len(self.data)

    def close(self) -> None:
        """Nothing to flush."""


def _after_prefix(prefix: bytes) -> bytes | None:
    """The first key after every key that starts with ``prefix`` (None: there is none)."""
    head = prefix.rstrip(b"\xff")
    if not head:
        return None
    return head[:-1] + bytes([head[-1] + 1])
