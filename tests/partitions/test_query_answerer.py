"""QueryAnswerer answers each asking of a query once, however often it is asked again."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from perdure.engine import queries
from perdure.engine.model import Reply
from perdure.engine.records import Query, Response
from perdure.partitions.queries import QueryAnswerer
from perdure.partitions.storage.store import PartitionStore


class Responses:
    """Where the answerer's responses go (it only calls ``respond``)."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, Response]] = []
        self.lock = threading.Lock()

    def respond(self, partition: int, response: Response) -> None:
        with self.lock:
            self.sent.append((partition, response))


def test_a_query_asked_again_while_it_waits_is_answered_once(tmp_path: Path) -> None:
    store = PartitionStore.open(tmp_path / "p")
    sink = Responses()
    answerer = QueryAnswerer(sink)  # type: ignore[arg-type]
    busy, go = threading.Event(), threading.Event()

    def hold(_partition: int, _census: Any) -> None:
        busy.set()
        go.wait(10)  # the thread is busy, as with a long list ahead

    try:
        answerer.count(0, store.snapshot(), hold)
        assert busy.wait(10)
        listing = Query(Reply(3, "r-1"), queries.list_request(queries.InvocationFilter(), None, 5))
        for _ in range(4):  # the asker's re-asks while the thread is busy
            answerer.submit(0, store.snapshot(), listing)
        other = Query(Reply(3, "r-2"), listing.request)
        answerer.submit(0, store.snapshot(), other)
        answerer.submit(1, store.snapshot(), listing)  # another partition's copy is its own
        go.set()
        answerer.drain(0)
        answerer.drain(1)
        answered = sorted(
            (json.loads(r.result or b"{}")["partition"], r.request_id) for _, r in sink.sent
        )
        assert answered == [(0, "r-1"), (0, "r-2"), (1, "r-1")]
        assert {p for p, _ in sink.sent} == {3}, "answers go to the asker's reply partition"
        # Once answered, asking again is answered again (the first answer may have been lost).
        answerer.submit(0, store.snapshot(), listing)
        answerer.drain(0)
        assert len(sink.sent) == 4
    finally:
        go.set()
        answerer.close()
        store.close()
