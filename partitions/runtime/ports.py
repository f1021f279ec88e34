"""The seams of the partition runtime: what it needs of a log, a clock, an invoker and a caller.

Each is a Protocol with one implementation per way of running a partition: Kafka (the worker),
a local log (``dev --embedded``, the TestRuntime) and the simulated log of the simulator.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

from perdure.engine import schemas
from perdure.engine.queries import ReadView
from perdure.engine.records import AckEntry, Envelope, SendResponse, StartInvocation
from perdure.engine.status_cache import StatusCache
from perdure.partitions.log import DeliveryCallback
from perdure.partitions.storage.store import StoreBatch

VERSION_HEADERS: list[tuple[str, bytes]] = [
    (schemas.VERSION_HEADER, str(schemas.SCHEMA_VERSION).encode())
]
"""The headers every log record carries (its schema version)."""


class LogRecord(Protocol):
    """One record read from a partition of the log.

    Shaped like ``confluent_kafka.Message`` so that a Kafka record is one without a wrapper
    on the hot path; the local and simulated logs hand out :class:`StoredRecord`.
    """

    def offset(self) -> int | None: ...

    def value(self) -> bytes | None: ...

    def timestamp(self) -> tuple[int, int]: ...

    def headers(self) -> Any: ...


class StoredRecord:
    """A record of a log held by this process (a file, memory, a simulation)."""

    __slots__ = ("_headers", "_offset", "_timestamp_ms", "_value")

    def __init__(
        self,
        offset: int,
        timestamp_ms: int,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self._offset = offset
        self._timestamp_ms = timestamp_ms
        self._value = value
        self._headers = VERSION_HEADERS if headers is None else headers

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp_ms)  # 1: the producer's create time, as Kafka says

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


class PartitionLog(Protocol):
    """The log as the runtime sees it: partitions it appends to and reads from.

    Ownership (which process may lead which partition) is the log's business too: Kafka's
    consumer group assigns partitions to workers; the local log has one owner; the simulated
    log moves partitions between simulated workers. Owners learn of it through their
    adapter's ``gained``/``lost`` calls into the runtime.
    """

    def append(
        self, partition: int, envelope: Envelope, on_delivery: DeliveryCallback | None = None
    ) -> None:
        """Appends a record (its envelope carries the leader's epoch); ``on_delivery`` hears
        None once it is durable, or the error."""
        ...

    def read(self, partition: int, offset: int, limit: int) -> list[LogRecord]:
        """Up to ``limit`` records from ``offset`` on."""
        ...

    def watermarks(self, partition: int) -> tuple[int, int]:
        """The first offset the log still holds and the next it will write."""
        ...

    def trim(self, partition: int, before: int) -> None:
        """Forgets the records below ``before`` (a backup holds what they did)."""
        ...


class RuntimeClock(Protocol):
    """Where the runtime reads time: the wall clock, or a virtual one."""

    def now_ms(self) -> int:
        """Milliseconds since the epoch: when timers are due."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: intervals and back-offs."""
        ...


class WallClock:
    """The clock of a worker: the system's."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def monotonic(self) -> float:
        return time.monotonic()


class InvokerPort(Protocol):
    """How the runtime reaches the invoker (the worker crosses to its event loop; the local
    partition and the simulator call it directly)."""

    def start(self, partition: int, epoch: int, start: StartInvocation) -> None: ...

    def ack(self, partition: int, action: AckEntry) -> None: ...

    def ended(self, invocation_id: str) -> None: ...

    def release(self, partition: int) -> None: ...


class PublishFence(Protocol):
    """The publish producers of a process's partitions (partitions/kafka/publisher.py in workers).

    Preparing a partition's producer fences every earlier one of it (another worker's, or this
    worker's own from an epoch it left) and settles what they left open; a leader claims the
    partition only once it is ready.
    """

    def prepare(self, partition: int) -> None: ...

    def release(self, partition: int) -> None: ...

    def ready(self, partition: int) -> bool: ...


class Responder(Protocol):
    """Where the answer to a caller goes (the responses topic, or a waiter in this process)."""

    def answer(self, action: SendResponse) -> None: ...


class RuntimeStore(Protocol):
    """A partition's store as the processor uses it: RocksDB in workers
    (:class:`~partitions.store.PartitionStore`), memory elsewhere
    (:class:`~partitions.local.memory_store.MemoryStore`)."""

    statuses: StatusCache | None

    def applied_offset(self) -> int: ...

    def get(self, key: bytes) -> bytes | None: ...

    def scan(self, prefix: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]: ...

    def begin(self) -> StoreBatch: ...

    def commit(self, batch: StoreBatch, applied_offset: int) -> None: ...

    def snapshot(self) -> ReadView: ...

    def close(self) -> None: ...
