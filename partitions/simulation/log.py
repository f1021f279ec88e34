"""SimLog: the simulated log — partitions of records in memory, with the faults of a real one.

Each append is encoded to the bytes Kafka would hold and lands after a seeded latency. What
the simulator may do to it (each decided by the world's seeded generator):

- **late or lost acknowledgements**: a record lands but its producer hears of it late;
- **failed appends**: the producer hears an error and the record never lands;
- **duplicates**: a record lands twice (a producer's retry without idempotence);
- **reordering**: records of two producers land in another order than they were sent (one
  producer's records keep their order per partition, as Kafka's idempotent producer keeps it);
- **outages**: for a while every append fails and nothing can be read;
- **trims**: the records below an offset are gone (a backup holds what they did).

``history`` keeps every record that ever landed, trimmed or not: the checks re-fold it from
outside the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError

from perdure.engine import codec
from perdure.engine.records import Envelope
from perdure.partitions.log import DeliveryCallback
from perdure.partitions.runtime.ports import StoredRecord


class Trimmed(Exception):
    """The offset asked for is below the log's start."""


class Unavailable(Exception):
    """The log is in an outage."""


@dataclass
class LogFaults:
    """How often the log misbehaves in one run (probabilities per append)."""

    latency_ms: tuple[int, int] = (0, 3)
    fail: float = 0.0
    duplicate: float = 0.0
    late_ack: float = 0.0
    late_ack_ms: int = 2000
    slow: float = 0.0
    """A record (and every later one of its producer on its partition) lands late: a slow
    broker or network, long enough for its partition to change hands meanwhile."""
    slow_ms: tuple[int, int] = (200, 3000)


class SimLog:
    """``partitions`` partitions of records, appended by named producers.

    Args:
        partitions: how many partitions.
        now_ms: the world's clock, which stamps each record when its producer sends it.
        chance: the world's seeded generator (a float in [0, 1)).
        between: the world's seeded generator (an int in a closed range).
        faults: how often it misbehaves.
        on_event: the world's trace.
    """

    def __init__(
        self,
        partitions: int,
        now_ms: Callable[[], int],
        chance: Callable[[], float],
        between: Callable[[int, int], int],
        faults: LogFaults,
        on_event: Callable[[str], None],
    ) -> None:
        self.partitions = partitions
        self._now_ms = now_ms
        self._chance = chance
        self._between = between
        self.faults = faults
        self._event = on_event
        self.records: list[list[StoredRecord]] = [[] for _ in range(partitions)]
        self.start: list[int] = [0] * partitions
        self.history: list[list[StoredRecord]] = [[] for _ in range(partitions)]
        self._landing: dict[tuple[str, int], float] = {}
        self.outage_until = 0.0
        self.faults_injected = 0
        self.wake = asyncio.Event()

    def producer(self, name: str) -> SimAppender:
        """The appender of one producer (a worker's, the world's)."""
        return SimAppender(self, name)

    def in_outage(self) -> bool:
        return asyncio.get_running_loop().time() < self.outage_until

    def end(self, partition: int) -> int:
        """The next offset ``partition`` will write."""
        return self.start[partition] + len(self.records[partition])

    def watermarks(self, partition: int) -> tuple[int, int]:
        if self.in_outage():
            raise Unavailable("the log is down")
        return self.start[partition], self.end(partition)

    def read(self, partition: int, offset: int, limit: int = 500) -> list[StoredRecord]:
        if self.in_outage():
            raise Unavailable("the log is down")
        first = self.start[partition]
        if offset < first:
            raise Trimmed(f"partition {partition} starts at {first}, asked for {offset}")
        at = offset - first
        return self.records[partition][at : at + limit]

    def trim(self, partition: int, before: int) -> None:
        first = self.start[partition]
        if before <= first:
            return
        before = min(before, self.end(partition))
        del self.records[partition][: before - first]
        self.start[partition] = before
        self._event(f"log: partition {partition} trimmed below {before}")

    def append(
        self,
        producer: str,
        partition: int,
        envelope: Envelope,
        on_delivery: DeliveryCallback | None,
        guard: Callable[[], bool] | None = None,
        on_land: Callable[[], None] | None = None,
    ) -> None:
        """Sends a record; it lands after a latency unless a fault or ``guard`` (checked when
        it would land: a fenced transaction) says otherwise. ``on_land`` is told when it lands
        (a transaction's other records become visible then, whenever its producer hears)."""
        loop = asyncio.get_running_loop()
        raw = codec.encode_envelope(envelope)
        sent_ms = self._now_ms()
        f = self.faults
        delay = self._between(*f.latency_ms) / 1000
        if self.in_outage() or self._chance() < f.fail:
            self.faults_injected += 1
            self._event(f"log: append of {type(envelope.command).__name__} by {producer} failed")
            if on_delivery is not None:
                loop.call_later(delay, on_delivery, KafkaError(KafkaError._MSG_TIMED_OUT))
            return
        if self._chance() < f.slow:
            self.faults_injected += 1
            delay += self._between(*f.slow_ms) / 1000
            self._event(f"log: an append of {producer} to partition {partition} is slow")
        key = (producer, partition)
        land = max(loop.time() + delay, self._landing.get(key, 0.0))
        self._landing[key] = land
        loop.call_at(land, self._land, partition, sent_ms, raw, on_delivery, guard, on_land)

    def _land(
        self,
        partition: int,
        sent_ms: int,
        raw: bytes,
        on_delivery: DeliveryCallback | None,
        guard: Callable[[], bool] | None,
        on_land: Callable[[], None] | None = None,
    ) -> None:
        if guard is not None and not guard():
            if on_delivery is not None:
                on_delivery(KafkaError(KafkaError._FENCED))
            return
        copies = 1
        if self._chance() < self.faults.duplicate:
            copies = 2
            self.faults_injected += 1
            self._event(f"log: a record lands twice on partition {partition}")
        for _ in range(copies):
            record = StoredRecord(self.end(partition), sent_ms, raw)
            self.records[partition].append(record)
            self.history[partition].append(record)
        self.wake.set()
        if on_land is not None:
            on_land()
        if on_delivery is None:
            return
        if self._chance() < self.faults.late_ack:
            self.faults_injected += 1
            asyncio.get_running_loop().call_later(self.faults.late_ack_ms / 1000, on_delivery, None)
        else:
            on_delivery(None)


class SimAppender:
    """One producer's appends to the simulated log (a ``LogAppender``)."""

    def __init__(self, log: SimLog, name: str) -> None:
        self._log = log
        self.name = name
        self.dead = False
        """Its process crashed: nothing more is sent (what was sent may still land)."""
        self.guard: Callable[[], bool] | None = None

    def append(
        self,
        partition: int,
        envelope: Envelope,
        on_delivery: DeliveryCallback | None = None,
        on_land: Callable[[], None] | None = None,
    ) -> None:
        if self.dead:
            return
        self._log.append(self.name, partition, envelope, on_delivery, self.guard, on_land)
