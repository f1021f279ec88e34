"""Which offsets of a subscription's partitions may be committed.

Records of one partition finish in any order (invocations run in parallel), but a committed
offset says every record below it is finished: the commit is the first offset not yet finished.
Whatever is read again after a crash is deduplicated by its invocation id, so committing late
costs only re-reading.
"""

from __future__ import annotations

import threading

TopicPart = tuple[str, int]


class OffsetTracker:
    """Finished and unfinished offsets per topic-partition, thread-safe.

    A partition taken away (a rebalance) is forgotten with :meth:`forget`; records of it that
    finish afterwards are ignored, also if the partition comes back (a new generation).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[TopicPart, dict[int, bool]] = {}
        """Per partition, the offsets read and not yet committable, in order: finished or not."""
        self._next: dict[TopicPart, int] = {}
        """Per partition, the offset to commit: every record below it finished."""
        self._generation: dict[TopicPart, int] = {}
        self._committed: dict[TopicPart, int] = {}

    def read(self, tp: TopicPart, offset: int) -> int:
        """A record was read; returns the generation to pass to :meth:`finished`."""
        with self._lock:
            pending = self._open.setdefault(tp, {})
            if not pending and tp not in self._next:
                self._next[tp] = offset
            pending[offset] = False
            return self._generation.get(tp, 0)

    def finished(self, tp: TopicPart, offset: int, generation: int) -> None:
        """The record at ``offset`` is done with (its invocation ended or it was dead-lettered)."""
        with self._lock:
            if self._generation.get(tp, 0) != generation:
                return
            pending = self._open.get(tp)
            if pending is None or offset not in pending:
                return
            pending[offset] = True
            # Offsets were read in increasing order, so the dict's order is theirs.
            while pending:
                first = next(iter(pending))
                if not pending[first]:
                    break
                del pending[first]
                self._next[tp] = first + 1

    def to_commit(self) -> dict[TopicPart, int]:
        """Partitions whose commit position moved since the last :meth:`committed`."""
        with self._lock:
            return {tp: n for tp, n in self._next.items() if self._committed.get(tp) != n}

    def committed(self, positions: dict[TopicPart, int]) -> None:
        """Those positions are now committed."""
        with self._lock:
            self._committed.update(positions)

    def position(self, tp: TopicPart) -> int | None:
        """The offset every record below which is finished, if any record was read."""
        with self._lock:
            return self._next.get(tp)

    def in_flight(self) -> int:
        """Records read and not finished."""
        with self._lock:
            return sum(1 for p in self._open.values() for done in p.values() if not done)

    def forget(self, tps: list[TopicPart]) -> None:
        """The partitions were taken away: their open records no longer count."""
        with self._lock:
            for tp in tps:
                self._open.pop(tp, None)
                self._next.pop(tp, None)
                self._committed.pop(tp, None)
                self._generation[tp] = self._generation.get(tp, 0) + 1
