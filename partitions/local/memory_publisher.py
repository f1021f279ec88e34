"""MemoryPublisher: ``ctx.publish`` in a test runtime, where there is no Kafka.

A record and the journal entry that records it are kept both or neither, as a Kafka transaction
keeps them: a crash planted before the entry reaches the log (partitions/local/crashes.py)
takes the record with it, and the replay publishes it again; after, the replay publishes
nothing. ``records`` is what a ``read_committed`` consumer of the topics would have read.
"""

from __future__ import annotations

from perdure.engine.model import OutgoingRecord
from perdure.engine.records import Envelope
from perdure.partitions.local.memory_log import MemoryLog


class MemoryPublisher:
    """Keeps published records in order, each with the log record of its entry."""

    def __init__(self, log: MemoryLog) -> None:
        self._log = log
        self.records: list[OutgoingRecord] = []

    async def publish(self, partition: int, envelope: Envelope, record: OutgoingRecord) -> None:
        def committed(err: object) -> None:
            if err is None:
                self.records.append(record)

        # on_delivery runs only if the log took the entry (a planted crash drops it).
        self._log.append(partition, envelope, committed)
