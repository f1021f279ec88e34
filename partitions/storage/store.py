"""PartitionStore: one RocksDB database per owned partition (rocksdict, raw bytes).

Applying a batch of records and recording the offset of the last one happen in a single RocksDB
write batch (DESIGN.md invariant 2). The write-ahead log is off: state and offset live in one
column family, so after a crash the store is a consistent older prefix of the log, and the worker
replays the log from the offset it finds. Losing a memtable costs replay time, never correctness.
"""

from __future__ import annotations

import functools
import heapq
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rocksdict import (
    BlockBasedOptions,
    Cache,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteBufferManager,
    WriteOptions,
)
from sortedcontainers import SortedList

from perdure.engine import keys
from perdure.engine.status_cache import StatusCache
from perdure.engine.storage import ABSENT, PartitionReader, UndoLog
from perdure.partitions.errors import StoreError, StoreFormatError

log = logging.getLogger("perdure.store")

_DELETED = None

BLOCK_CACHE_BYTES = 24 * 2**20
"""The block cache every store of a worker process shares (memtables are charged to it).

Small on purpose: reads past it come from the OS page cache (not the process's memory), and
glibc's allocator keeps about twice what a churning cache holds (malloc_info on a worker
at 200k retained invocations: 192 MB of arenas, 133 MB of it free chunks, with a 48 MiB
cache), so the cache's size sets how far RSS climbs before it is flat."""
MEMTABLE_BYTES = 16 * 2**20
"""The memtables of every store of a worker process, together (charged to the cache).

Not smaller: with 8 MiB the stores flushed so often that three_steps at concurrency 64 fell
from ~500 to ~340 calls/s (the worker's CPU per call 1.55 -> 2.7 ms), A/B in one run."""

_limits = {"cache": BLOCK_CACHE_BYTES, "memtables": MEMTABLE_BYTES}


def configure_memory(cache_bytes: int, memtable_bytes: int) -> None:
    """Sets RocksDB's memory bound for this process: call before the first store opens.

    Every store shares one block cache of ``cache_bytes`` and its memtables are capped together
    at ``memtable_bytes``, charged to that cache: RocksDB's memory is one figure, whatever the
    number of partitions and whatever they retain on disk (what is not cached is read from the
    OS's page cache).
    """
    _limits["cache"], _limits["memtables"] = cache_bytes, memtable_bytes
    if _shared_cache.cache_info().currsize:
        _shared_cache().set_capacity(cache_bytes)  # the memtable cap stays as created


@functools.cache
def _shared_cache() -> Cache:
    return Cache(_limits["cache"])


@functools.cache
def _shared_write_buffers() -> WriteBufferManager:
    return WriteBufferManager.new_write_buffer_manager_with_cache(
        _limits["memtables"], False, _shared_cache()
    )


def memory_in_use() -> tuple[int, int]:
    """Bytes the shared block cache holds, and bytes of it pinned (every store of the process)."""
    cache = _shared_cache()
    return cache.get_usage(), cache.get_pinned_usage()


class PartitionStore:
    """The RocksDB store of one partition.

    Args:
        path: the store's folder (created if missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.statuses: StatusCache | None = StatusCache()
        """This partition's statuses written lately (engine/status_cache.py)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        # Small memtables: a worker holds many partitions, and the log is the truth anyway.
        # One write buffer manager for the process caps them all together, and charges them
        # to the shared block cache: RocksDB's memory has one bound, whatever the number of
        # partitions (led or standby) and whatever the stores hold.
        options.set_write_buffer_size(8 * 2**20)
        options.set_max_write_buffer_number(2)
        options.set_write_buffer_manager(_shared_write_buffers())
        # Index and filter blocks live in the block cache too, not on the heap beside each
        # open table file: memory stays flat however many completed invocations the stores
        # retain on disk.
        table = BlockBasedOptions()
        table.set_block_cache(_shared_cache())
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(table)
        try:
            # The options named for the default column family too: opening a store that exists
            # otherwise takes that family's options from the store's OPTIONS file, with a block
            # cache of its own (a worker that restarted or restored had one cache per store:
            # 8 x 24 MiB instead of one 24 MiB; bench.recovery: 222 MB of RSS at 200k).
            self._db = Rdict(str(path), options, column_families={"default": options})
        except Exception as err:
            raise StoreError(f"cannot open the partition store at {path}: {err}") from err
        version = self._db.get(keys.META_FORMAT)
        if version is None:
            self._db.put(keys.META_FORMAT, keys.encode_int(keys.STORE_FORMAT_VERSION))
        elif keys.decode_int(version) != keys.STORE_FORMAT_VERSION:
            self._db.close()
            raise StoreFormatError(
                f"store {path} has format {keys.decode_int(version)}, "
                f"this worker writes {keys.STORE_FORMAT_VERSION}"
            )
        self._write_options = WriteOptions()
        self._write_options.disable_wal = True  # type: ignore[method-assign,assignment]

    @classmethod
    def open(cls, path: Path) -> PartitionStore:
        """Opens the store at ``path``; one of another format is deleted and rebuilt from the log.

        The log is the truth (DESIGN.md invariant 1), so a store is only a cache of its fold.
        """
        try:
            return cls(path)
        except StoreFormatError as err:
            log.warning("%s: deleting it, the partition is replayed from the log", err)
            cls.destroy(path)
            return cls(path)

    def applied_offset(self) -> int:
        """The offset of the last applied record, or -1 for an empty store."""
        raw = self._db.get(keys.META_APPLIED_OFFSET)
        return -1 if raw is None else keys.decode_int(raw)

    def get(self, key: bytes) -> bytes | None:
        """Reads a committed value."""
        value = self._db.get(key)
        return None if value is None else bytes(value)

    def scan(self, prefix: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Committed keys with ``prefix`` (below ``end`` if given), in order.

        The upper bound stops RocksDB at the range's end: without it a seek into an empty range
        steps over every tombstone that follows (a sweep's deleted keys, say) to find a live key.
        """
        options = ReadOptions()
        upper = end if end is not None else _after(prefix)
        if upper is not None:
            options.set_iterate_upper_bound(upper)
        it = self._db.iter(options)
        it.seek(prefix)
        while it.valid():
            key = bytes(it.key())
            if not key.startswith(prefix) or (end is not None and key >= end):
                break
            yield key, bytes(it.value())
            it.next()

    def iterate_all(self) -> StoreView:
        """Every key and value as of now, however the store changes while they are read."""
        it = self._db.iter(ReadOptions())
        it.seek_to_first()
        return StoreView(it)

    def estimate_keys(self) -> int:
        """RocksDB's estimate of the number of keys."""
        return int(self._db.property_int_value("rocksdb.estimate-num-keys") or 0)

    def snapshot(self) -> StoreSnapshot:
        """A read of the store as it is now, unchanged by later commits (release it before
        the store closes)."""
        return StoreSnapshot(self._db, self.statuses)

    def begin(self) -> StoreBatch:
        """A new batch of writes over this store."""
        return StoreBatch(self)

    def commit(self, batch: StoreBatch, applied_offset: int) -> None:
        """Writes ``batch`` and the applied offset atomically."""
        wb = WriteBatch(raw_mode=True)
        for key, value in batch.overlay.items():
            if value is _DELETED:
                wb.delete(key)
            else:
                wb.put(key, value)
        wb.put(keys.META_APPLIED_OFFSET, keys.encode_int(applied_offset))
        self._db.write(wb, self._write_options)

    def load(self, flat: list[bytes]) -> None:
        """Writes alternating keys and values as they are (a restore from a backup)."""
        wb = WriteBatch(raw_mode=True)
        for i in range(0, len(flat), 2):
            wb.put(flat[i], flat[i + 1])
        self._db.write(wb, self._write_options)

    def close(self) -> None:
        """Flushes and closes the store."""
        try:
            self._db.flush()
        finally:
            self._db.close()

    @staticmethod
    def destroy(path: Path) -> None:
        """Deletes a closed store's files."""
        shutil.rmtree(path, ignore_errors=True)


def _after(prefix: bytes) -> bytes | None:
    """The smallest key above every key that starts with ``prefix`` (None: no such key)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


class StoreView:
    """A consistent, ordered read of a whole store (a RocksDB iterator pins its view).

    Close it before the store: an open iterator keeps the store's files alive.
    """

    def __init__(self, it: Any) -> None:
        self._it: Any = it

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        it = self._it
        while it is not None and it.valid():
            yield it.key(), it.value()  # raw mode: bytes already
            it.next()
            it = self._it

    def close(self) -> None:
        """Releases the iterator."""
        self._it = None


class StoreSnapshot:
    """A read of a store as of one moment (engine.queries.ReadView), for another thread.

    RocksDB iterators pin the state they were made at, so this holds two made together: one
    for point reads, one for range reads. (rocksdict 0.3's ``Snapshot.iter`` reads the
    current state, not the snapshot's: hence iterators.) One range read at a time.
    """

    def __init__(self, db: Any, statuses: StatusCache | None = None) -> None:
        self.statuses = statuses  # the store's: its entries are immutable statuses
        self._getter: Any = db.iter(ReadOptions())
        self._scanner: Any = db.iter(ReadOptions())
        self._scanning = False

    def get(self, key: bytes) -> bytes | None:
        it = self._getter
        it.seek(key)
        if it.valid() and it.key() == key:
            return bytes(it.value())
        return None

    def scan(self, prefix: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        upper = end if end is not None else _after(prefix)
        for key, value in self.scan_range(prefix, upper):
            if not key.startswith(prefix):
                return
            yield key, value

    def scan_range(
        self, start: bytes, end: bytes | None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        if self._scanning:
            raise RuntimeError("one range read at a time on a store snapshot")
        self._scanning = True
        it = self._scanner
        try:
            if reverse:
                if end is None:
                    it.seek_to_last()
                else:
                    it.seek_for_prev(end)
            else:
                it.seek(start)
            while it.valid():
                key = bytes(it.key())
                if reverse:
                    if key < start:
                        return
                    if end is None or key < end:
                        yield key, bytes(it.value())
                    it.prev()
                else:
                    if end is not None and key >= end:
                        return
                    yield key, bytes(it.value())
                    it.next()
        finally:
            self._scanning = False

    def release(self) -> None:
        """Lets RocksDB drop what only this view kept (before the store closes)."""
        self._getter = self._scanner = None


class StoreBatch:
    """Uncommitted writes over a :class:`PartitionStore`; reads see them (engine PartitionTxn).

    The overlay is a plain dict (a get or put is one hash lookup: most batches never range-read
    it). The first range read builds a sorted index of its keys, kept up to date from then on,
    so a range read merges two sorted streams (the store's and the overlay's) lazily instead of
    materialising and sorting the range; one that no overlaid key falls in reads the store alone.
    """

    def __init__(self, store: PartitionReader) -> None:
        self._store = store
        self.statuses = store.statuses
        self.overlay: dict[bytes, bytes | None] = {}
        self._sorted: SortedList | None = None
        self._undo = UndoLog()
        self._before = self._undo.before  # the hot path's one lookup per write, inlined

    def get(self, key: bytes) -> bytes | None:
        if key in self.overlay:
            return self.overlay[key]
        return self._store.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self._set(key, value)

    def delete(self, key: bytes) -> None:
        self._set(key, _DELETED)

    def _set(self, key: bytes, value: bytes | None) -> None:
        if key not in self._before:
            self._before[key] = self.overlay.get(key, ABSENT)
        if self._sorted is not None and key not in self.overlay:
            self._sorted.add(key)
        self.overlay[key] = value

    def savepoint(self) -> None:
        self._undo.clear()

    def rollback(self) -> None:
        for key in self._undo.undo(self.overlay):
            if self._sorted is not None:
                self._sorted.discard(key)

    def scan(self, prefix: bytes, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        overlaid = self._overlay_range(prefix, end)
        if not overlaid:
            return self._store.scan(prefix, end)
        return self._merged(prefix, end, overlaid)

    def _merged(
        self, prefix: bytes, end: bytes | None, overlaid: list[bytes]
    ) -> Iterator[tuple[bytes, bytes]]:
        stored = ((k, 1, v) for k, v in self._store.scan(prefix, end))
        mine = ((k, 0, self.overlay[k]) for k in overlaid)
        last: bytes | None = None
        # On equal keys the overlay (rank 0) comes first and wins.
        for key, _rank, value in heapq.merge(mine, stored):
            if key == last:
                continue
            last = key
            if value is not _DELETED:
                yield key, value

    def _overlay_range(self, prefix: bytes, end: bytes | None) -> list[bytes]:
        """The overlaid keys in the range, in order, as of now (a list: the caller may write
        while it reads the merge)."""
        if not self.overlay:
            return []
        if self._sorted is None:
            self._sorted = SortedList(self.overlay)
        out = []
        for key in self._sorted.irange(minimum=prefix):
            if not key.startswith(prefix) or (end is not None and key >= end):
                break
            out.append(key)
        return out
