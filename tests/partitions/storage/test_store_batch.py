"""A write batch over a real RocksDB store reads like the engine's reference store.

Random puts, deletes, gets and range reads, some before the batch's first range read and some
after it (its sorted index is built at the first one), checked step by step against
:class:`MemoryTxn` holding the same committed data plus the same writes; then committed and
read again.
"""

from __future__ import annotations

import random
from pathlib import Path

from perdure.engine.storage import MemoryTxn
from perdure.partitions.storage.store import PartitionStore

PREFIXES = [b"a", b"ab", b"b", b"c\x00", b"c\xff"]


def _key(rng: random.Random) -> bytes:
    return rng.choice(PREFIXES) + bytes([rng.randrange(4)]) * rng.randrange(1, 3)


def test_a_batch_reads_its_own_writes_over_the_store_in_order(tmp_path: Path) -> None:
    rng = random.Random(7)
    store = PartitionStore(tmp_path / "p0")
    oracle = MemoryTxn()
    try:
        for round_ in range(30):
            batch = store.begin()
            for _ in range(rng.randrange(1, 40)):
                op = rng.random()
                key = _key(rng)
                if op < 0.4:
                    value = rng.randbytes(3)
                    batch.put(key, value)
                    oracle.put(key, value)
                elif op < 0.6:
                    batch.delete(key)
                    oracle.delete(key)
                elif op < 0.8:
                    assert batch.get(key) == oracle.get(key)
                else:
                    prefix = rng.choice([*PREFIXES, b"c"])
                    end = rng.choice([None, prefix + b"\x02"])
                    assert list(batch.scan(prefix, end)) == list(oracle.scan(prefix, end))
            store.commit(batch, round_)
            for prefix in (b"a", b"b", b"c"):  # not b"": the store's own meta keys are there
                assert list(store.scan(prefix)) == list(oracle.scan(prefix))
    finally:
        store.close()


def test_a_range_read_does_not_see_writes_made_after_it_began(tmp_path: Path) -> None:
    # The state machine writes while it walks a range (it deletes what it took): the walk
    # goes over the range as it was when it began, deleted keys included.
    store = PartitionStore(tmp_path / "p0")
    try:
        batch = store.begin()
        for k in (b"w1", b"w2", b"w3"):
            batch.put(k, b"v")
        store.commit(batch, 0)
        batch = store.begin()
        batch.put(b"w0", b"mine")
        seen = []
        for key, value in batch.scan(b"w"):
            seen.append((key, value))
            batch.delete(key)
        assert seen == [(b"w0", b"mine"), (b"w1", b"v"), (b"w2", b"v"), (b"w3", b"v")]
        assert list(batch.scan(b"w")) == []
    finally:
        store.close()


def test_a_rollback_undoes_a_records_writes_and_keeps_the_batchs_earlier_ones(
    tmp_path: Path,
) -> None:
    """engine/rejection.py: a rejected record leaves nothing in the batch it shared."""
    store = PartitionStore(tmp_path / "p0")
    try:
        committed = store.begin()
        committed.put(b"a1", b"stored")
        store.commit(committed, 0)
        batch = store.begin()
        batch.put(b"a2", b"earlier record")
        list(batch.scan(b"a"))  # builds the sorted index, which a rollback must keep right
        batch.savepoint()
        batch.put(b"a2", b"rejected")
        batch.put(b"a3", b"rejected")
        batch.delete(b"a1")
        batch.rollback()
        assert list(batch.scan(b"a")) == [(b"a1", b"stored"), (b"a2", b"earlier record")]
        store.commit(batch, 1)
        assert list(store.scan(b"a")) == [(b"a1", b"stored"), (b"a2", b"earlier record")]
    finally:
        store.close()
