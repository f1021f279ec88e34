"""The cache of statuses written lately gives exactly what decoding their bytes gives.

A leader reads a status from the cache, a worker replaying the log decodes it: if the two ever
differed, the same log would lead to two states. So every status a random run writes is
decoded both ways and compared, headers in any order and repeated names included.
"""

from __future__ import annotations

import random

from perdure.engine import codec
from perdure.engine.model import Caller, Failure, HandlerKind, InvocationStatus, Phase, Target
from perdure.engine.status_cache import StatusCache


def random_status(rng: random.Random) -> InvocationStatus:
    def maybe(value: object) -> object:
        return value if rng.random() < 0.5 else None

    names = ["b", "a", "x-id", "a"]
    headers = tuple(
        (rng.choice(names), rng.choice(["1", "2", "é"])) for _ in range(rng.randrange(4))
    )
    return InvocationStatus(
        invocation_id=f"inv_{rng.getrandbits(64):016x}",
        target=Target("svc", rng.choice(["h", "g"]), rng.choice([None, "", "k1"])),
        phase=rng.choice(list(Phase)),
        created_ms=rng.randrange(2**41),
        retry_count=rng.randrange(5),
        journal_length=rng.randrange(9),
        idempotency_key=maybe("idem"),  # type: ignore[arg-type]
        result=maybe(rng.randbytes(rng.randrange(0, 1500))),  # type: ignore[arg-type]
        failure=maybe(Failure(500, "boom")),  # type: ignore[arg-type]
        completed_ms=maybe(rng.randrange(2**41)),  # type: ignore[arg-type]
        last_error=maybe("Traceback ...\nValueError: x"),  # type: ignore[arg-type]
        headers=headers,
        handler_kind=rng.choice(list(HandlerKind)),
        caller=maybe(Caller("inv_caller", rng.randrange(4))),  # type: ignore[arg-type]
        execute_at_ms=maybe(rng.randrange(2**41)),  # type: ignore[arg-type]
        suspended_on=tuple(rng.sample(range(8), rng.randrange(3))),
        cancel_requested=rng.random() < 0.2,
    )


def test_a_cached_status_equals_its_fresh_decode() -> None:
    rng = random.Random(11)
    cached = 0
    cache = StatusCache()
    for _ in range(2000):
        s = random_status(rng)
        data = codec.encode_status(s, cache)
        got = codec.decode_status(bytes(bytearray(data)), cache)  # another object, as RocksDB's
        fresh = codec.decode_status(data)  # no cache: decoded
        assert got == fresh
        cached += got is s
    assert cached > 500, "the cache should have served most of the small statuses"


def test_the_cache_keeps_neither_large_statuses_nor_more_than_its_size() -> None:
    cache = StatusCache(size=3, max_bytes=100)
    small = [InvocationStatus(f"inv_{i}", Target("s", "h"), Phase.RUNNING, i) for i in range(5)]
    encoded = [codec.encode_status(s) for s in small]
    for data, s in zip(encoded, small, strict=True):
        cache.put(data, s)
    assert [cache.get(d) for d in encoded] == [None, None, *small[2:]]
    big = InvocationStatus("inv_big", Target("s", "h"), Phase.RUNNING, 0, result=b"x" * 200)
    data = codec.encode_status(big)
    cache.put(data, big)
    assert cache.get(data) is None


def test_each_partition_store_has_its_own_cache() -> None:
    """Not a process-wide one: the cache lives with the store whose statuses it holds."""
    from perdure.engine.status import get_status, put_status
    from perdure.engine.storage import MemoryTxn

    a, b = MemoryTxn(), MemoryTxn()
    s = InvocationStatus("inv_1", Target("s", "h"), Phase.RUNNING, 1)
    put_status(a, s)
    b.data.update(a.data)
    assert get_status(a, "inv_1") is s, "a's own write, served from a's cache"
    got = get_status(b, "inv_1")
    assert got == s and got is not s, "b decodes: a's cache is not b's"
