"""MemoryLog: the log of a test runtime, one partition held in memory.

Records are kept as the bytes the Kafka log would hold (the same Avro envelope), stamped with
the virtual clock, and decoded again when applied: a test exercises the byte format too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from perdure.engine import codec
from perdure.engine.records import Command, Envelope
from perdure.partitions.local.clock import VirtualClock
from perdure.partitions.log import DeliveryCallback
from perdure.partitions.runtime.ports import StoredRecord

Interceptor = Callable[[Envelope], bool]
"""Decides whether a record the invoker appends reaches the log (False: dropped, a crash)."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record of the log: its offset, virtual timestamp and command."""

    offset: int
    timestamp_ms: int
    epoch: int
    command: Command


class MemoryLog:
    """An append-only list of encoded envelopes; ``wake`` is set on every append."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._records: list[tuple[int, bytes]] = []
        self.wake = asyncio.Event()
        self.intercept: Interceptor | None = None

    def append(
        self, partition: int, envelope: Envelope, on_delivery: DeliveryCallback | None = None
    ) -> None:
        """Appends to the log (every partition is the one partition), as the invoker does."""
        if self.intercept is not None and not self.intercept(envelope):
            return
        self.put(envelope)
        if on_delivery is not None:
            on_delivery(None)

    def put(self, envelope: Envelope) -> None:
        """Appends a record of the runtime's own (the ingress's, a timer's, a leader's)."""
        record = (self._clock.now_ms, codec.encode_envelope(envelope))
        self._keep(*record)
        self._records.append(record)
        self.wake.set()

    def _keep(self, timestamp_ms: int, raw: bytes) -> None:
        """Makes a record durable before it counts (a file log writes it here)."""

    def __len__(self) -> int:
        return len(self._records)

    def read(self, offset: int, limit: int = 10_000) -> list[StoredRecord]:
        """Up to ``limit`` records from ``offset`` on, as the log holds them (the processor
        decodes them)."""
        batch = self._records[offset : offset + limit]
        return [StoredRecord(offset + i, ts, raw) for i, (ts, raw) in enumerate(batch)]

    def watermarks(self, partition: int = 0) -> tuple[int, int]:
        """Nothing is ever trimmed: from 0 to the next offset."""
        return 0, len(self._records)

    def records(self) -> list[LogRecord]:
        """Every record so far, decoded."""
        out = []
        for offset, (ts, raw) in enumerate(self._records):
            env = codec.decode_envelope(raw, ts)
            out.append(LogRecord(offset, ts, env.epoch, env.command))
        return out
