"""FileLog: the log of ``perdure dev --embedded``, one append-only file, replayed at start.

Each record is its Avro envelope as Kafka's log would hold it, framed as 8 bytes of timestamp
(ms), 4 bytes of length, then the bytes. A record is written and flushed to the operating system
before it counts, so a process killed at any moment loses nothing it answered for; a record cut
short by that kill (the tail of the file) was never answered for and is dropped at the next
start. The file is not fsynced per record: this log is for laptops, where a power cut may take
the last records; Kafka stays the production log. It is never trimmed either: a restart replays
it all (the log is the truth, DESIGN.md invariant 1), which suits the history of a laptop.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

from perdure.partitions.local.clock import VirtualClock
from perdure.partitions.local.memory_log import MemoryLog

log = logging.getLogger("perdure.embedded")

_FRAME = struct.Struct(">qI")
FILE_NAME = "log.v1"
"""The log's file name; the framing above is version 1 and never changes meaning."""


class FileLog(MemoryLog):
    """A :class:`MemoryLog` kept in ``folder/log.v1``; records already there come first."""

    def __init__(self, clock: VirtualClock, folder: Path) -> None:
        super().__init__(clock)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / FILE_NAME
        good = self._load()
        self._file = self.path.open("ab")
        if good < self._file.tell():
            log.warning("%s: dropping a record cut short at byte %d", self.path, good)
            self._file.truncate(good)
            self._file.seek(good)

    def _load(self) -> int:
        """Reads every whole record; returns where the last one ends."""
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        at = 0
        while at + _FRAME.size <= len(data):
            timestamp_ms, length = _FRAME.unpack_from(data, at)
            end = at + _FRAME.size + length
            if end > len(data):
                break
            self._records.append((timestamp_ms, data[at + _FRAME.size : end]))
            at = end
        return at

    def _keep(self, timestamp_ms: int, raw: bytes) -> None:
        self._file.write(_FRAME.pack(timestamp_ms, len(raw)) + raw)
        self._file.flush()

    def close(self) -> None:
        self._file.close()
