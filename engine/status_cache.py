"""StatusCache: the statuses a partition wrote lately, by their encoded bytes.

Each partition's store holds one (``statuses`` of engine/storage.py's readers): the cache lives
where the statuses are written and read, not in the process.

A status is read back by the next record of its invocation, moments after it was written;
decoding it again was a tenth of a worker's CPU. The cache is keyed by the bytes, so a hit is
exactly what decoding them would give: only statuses that decode to an equal object are put
in (headers sorted, each name once: decoding sorts and merges them), and statuses are
immutable. Bounded: the oldest go first, and a large status is not kept. OrderedDict's
operations are atomic under the GIL (the query thread decodes too).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict

from perdure.engine.model import InvocationStatus


class StatusCache:
    """Encoded status -> the status it was encoded from.

    Args:
        size: how many statuses it keeps at most.
        max_bytes: statuses longer than this when encoded (a large result) are not kept.
    """

    def __init__(self, size: int = 2048, max_bytes: int = 1024) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._by_bytes: OrderedDict[bytes, InvocationStatus] = OrderedDict()

    def put(self, data: bytes, status: InvocationStatus) -> None:
        """Keeps ``status`` under ``data``, its encoding, if decoding gives it back equal."""
        if len(data) > self.max_bytes:
            return  # a large result: the memory is worth more than the decode
        headers = status.headers
        if headers and headers != tuple(sorted(dict(headers).items())):
            return  # decoding would sort or merge them: not the same object
        self._by_bytes[data] = status
        if len(self._by_bytes) > self.size:
            with contextlib.suppress(KeyError):  # emptied meanwhile by clear()
                self._by_bytes.popitem(last=False)

    def get(self, data: bytes) -> InvocationStatus | None:
        """The status encoded as ``data``, if it is kept."""
        return self._by_bytes.get(data)

    def clear(self) -> None:
        """Forgets every status."""
        self._by_bytes.clear()
