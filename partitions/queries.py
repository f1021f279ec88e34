"""QueryAnswerer: answers operators' queries (engine/queries.py) off the processor thread.

It also takes each led partition's census (engine/census.py) for the in-flight gauges.

A query is answered from the partition's store as applied up to the query's record: the
processor takes a :class:`~partitions.store.StoreSnapshot` when it carries out the
``AnswerQuery`` action (between two batches, so nothing later is in it) and hands it here. A
list reads up to 20,000 keys; doing that on the processor thread would hold up every
partition's records behind an operator's page, so one thread of its own does it.
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from perdure.engine import census, queries
from perdure.engine.census import Census
from perdure.engine.records import Query, Response, ResponseStatus
from perdure.partitions.log import LogWriter
from perdure.partitions.storage.store import StoreSnapshot

log = logging.getLogger("perdure.queries")


@dataclass(frozen=True, slots=True)
class _Job:
    partition: int
    snapshot: StoreSnapshot
    run: Callable[[], None]
    what: str
    asked: tuple[int, str] | None = None


class QueryAnswerer:
    """One thread answering the queries of every partition the worker leads.

    Args:
        writer: where answers go (the responses topic).
    """

    def __init__(self, writer: LogWriter) -> None:
        self._writer = writer
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._busy: Counter[int] = Counter()
        self._asked: set[tuple[int, str]] = set()
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="queries", daemon=True)
        self._thread.start()

    def submit(self, partition: int, snapshot: StoreSnapshot, query: Query) -> None:
        """Answers ``query`` from ``snapshot`` soon (the snapshot is released after).

        A query asked again while its first asking still waits here is dropped: the asker
        appends it again every 2 s until answered (ingress/admin/operations.py), and answering every
        copy of a slow list would queue more work each time, so that none is answered in time.
        """
        asked = (partition, query.reply.request_id)
        with self._idle:
            if asked in self._asked:
                snapshot.release()
                return
            self._asked.add(asked)
        job = functools.partial(self._answer, partition, snapshot, query)
        self._put(_Job(partition, snapshot, job, f"query {query.request[:200]}", asked))

    def count(
        self, partition: int, snapshot: StoreSnapshot, done: Callable[[int, Census], None]
    ) -> None:
        """Takes the census of ``snapshot`` soon and gives it to ``done`` (on this thread)."""

        def job() -> None:
            done(partition, census.take(snapshot, int(time.time() * 1000)))

        self._put(_Job(partition, snapshot, job, "census"))

    def _put(self, job: _Job) -> None:
        with self._idle:
            self._busy[job.partition] += 1
        self._queue.put(job)

    def drain(self, partition: int, timeout: float = 10.0) -> None:
        """Waits until no query of ``partition`` reads its store (call before closing it)."""
        with self._idle:
            self._idle.wait_for(lambda: self._busy[partition] == 0, timeout)

    def close(self) -> None:
        """Answers what is queued, then stops."""
        self._queue.put(None)
        self._thread.join(30)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                item.run()
            except Exception:
                log.exception("partition %d: %s failed", item.partition, item.what)
            finally:
                item.snapshot.release()
                with self._idle:
                    self._busy[item.partition] -= 1
                    if item.asked is not None:
                        self._asked.discard(item.asked)
                    self._idle.notify_all()

    def _answer(self, partition: int, snapshot: StoreSnapshot, query: Query) -> None:
        started = time.monotonic()
        doc = queries.answer(snapshot, query.request, int(time.time() * 1000))
        doc["partition"] = partition
        response = Response(query.reply.request_id, "", ResponseStatus.OK, json.dumps(doc).encode())
        self._writer.respond(query.reply.partition, response)
        log.debug("partition %d: query answered in %.3fs", partition, time.monotonic() - started)
