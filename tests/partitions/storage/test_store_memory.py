"""RocksDB's memory has one bound per process, however much the stores hold (real RocksDB)."""

from __future__ import annotations

import os
from pathlib import Path

from perdure.partitions.storage import heap
from perdure.partitions.storage.store import (
    BLOCK_CACHE_BYTES,
    MEMTABLE_BYTES,
    PartitionStore,
    configure_memory,
    memory_in_use,
)


def test_many_stores_reading_more_than_the_cache_stay_within_its_bound(tmp_path: Path) -> None:
    cache = 4 * 2**20
    configure_memory(cache, 2 * 2**20)
    try:
        stores = [PartitionStore(tmp_path / f"p{i}") for i in range(4)]
        value = os.urandom(1000)
        for store in stores:
            for batch_start in range(0, 8000, 1000):
                batch = store.begin()
                for k in range(batch_start, batch_start + 1000):
                    batch.put(b"k%08d" % k, value)
                store.commit(batch, batch_start)
        # 32 MB written and read back: eight times what the cache may hold. The blocks read
        # stay within the bound; the memtables charged to the cache are pinned there (the cap
        # flushes the store being written, an idle store keeps its last memtable).
        peak_blocks = peak_pinned = 0
        for store in stores:
            assert sum(1 for _ in store.scan(b"k")) == 8000
            usage, pinned = memory_in_use()
            peak_blocks = max(peak_blocks, usage - pinned)
            peak_pinned = max(peak_pinned, pinned)
        assert peak_blocks <= cache * 1.1, f"the cache held {peak_blocks} bytes of blocks"
        assert peak_pinned > 0, "the memtables are not charged to the shared cache"
        assert peak_pinned <= len(stores) * 8 * 2**20, f"memtables of {peak_pinned} bytes"
        for store in stores:
            store.close()
        heap.release_free_memory()  # glibc here: must not raise, nor break what follows
    finally:
        configure_memory(BLOCK_CACHE_BYTES, MEMTABLE_BYTES)


def test_a_reopened_store_shares_the_cache_instead_of_bringing_its_own(tmp_path: Path) -> None:
    """RocksDB opens an existing store's column family with the options of its OPTIONS file
    unless told otherwise, and that came with a cache of its own per store."""
    configure_memory(4 * 2**20, 2 * 2**20)
    try:
        first = PartitionStore(tmp_path / "a")
        batch = first.begin()
        for k in range(5000):
            batch.put(b"k%08d" % k, os.urandom(200))
        first.commit(batch, 1)
        first.close()
        reopened = PartitionStore(tmp_path / "a")  # a restart, or the rename after a restore
        other = PartitionStore(tmp_path / "b")
        assert sum(1 for _ in reopened.scan(b"k")) == 5000  # reads blocks into its cache
        usage, _ = memory_in_use()
        for store in (reopened, other):
            seen = store._db.property_int_value("rocksdb.block-cache-usage")
            assert seen == usage, f"a store with a cache of its own: {seen} != {usage}"
        reopened.close()
        other.close()
    finally:
        configure_memory(BLOCK_CACHE_BYTES, MEMTABLE_BYTES)
