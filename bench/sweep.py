"""How long the retention sweep holds a partition's processor: N expired invocations at once.

    python -m bench.sweep 300000

Writes N completed invocations (status and expiry index) into a real PartitionStore, then
applies ``PurgeExpired`` records, each in its own write batch as the processor would, until
none is left; prints how many sweep records it took, the longest one, and the total.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from perdure.engine import codec, keys, state_machine
from perdure.engine.model import InvocationStatus, Phase, Target
from perdure.engine.records import AnnounceLeader, Envelope, PurgeExpired
from perdure.partitions.storage.store import PartitionStore


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    n = int(args[0]) if args else 300_000
    with tempfile.TemporaryDirectory() as tmp:
        store = PartitionStore(Path(tmp) / "p")
        batch = store.begin()
        state_machine.apply(Envelope(AnnounceLeader("w"), 1, "w", 0), batch)
        store.commit(batch, 0)
        for start in range(0, n, 50_000):
            batch = store.begin()
            for i in range(start, min(start + 50_000, n)):
                inv = f"inv_{i:032d}"
                status = InvocationStatus(inv, Target("s", "h"), Phase.COMPLETED, 1, completed_ms=1)
                batch.put(keys.status_key(inv), codec.encode_status(status))
                batch.put(keys.expiry_key(1, inv), b"")
            store.commit(batch, 1)
        longest, total, records, offset = 0.0, 0.0, 0, 2
        while True:
            started = time.perf_counter()
            batch = store.begin()
            actions = state_machine.apply(Envelope(PurgeExpired(1), 1, "w", 10_000), batch)
            store.commit(batch, offset)
            took = time.perf_counter() - started
            longest, total, records, offset = (
                max(longest, took),
                total + took,
                records + 1,
                offset + 1,
            )
            if not actions:
                break
        left = sum(1 for _ in store.scan(keys.STATUS))
        store.close()
    print(
        f"{n} expired: {records} sweep records, longest {longest * 1000:.0f} ms, "
        f"total {total:.1f} s, {left} left"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
