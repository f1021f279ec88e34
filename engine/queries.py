"""Operators' reads of a partition: its invocations listed and filtered, one described, the
state of an object or workflow key.

A query travels through the log (:class:`~engine.records.Query`), so that its answer is as of
its place there: an invocation whose caller got its answer before the query was appended is
shown completed, never running. The partition's leader answers it from a snapshot of its store
taken when it applied the query (partitions/queries.py); the state machine only passes it on.

Requests and answers are JSON (format :data:`QUERY_FORMAT`, the ``v`` of every request)::

    {"v": 1, "kind": "list", "filter": {...}, "cursor": null, "limit": 100}
    {"v": 1, "kind": "describe", "invocation_id": "inv_...", "results": false}
    {"v": 1, "kind": "state", "service": "cart", "key": "alice"}

A list reads one index and stops after ``limit`` matches or :data:`SCAN_BUDGET` keys read,
whichever comes first, and returns where to go on (``next``): a rare status among many
retained invocations costs several pages, never an unbounded scan. Which index is read
follows from the statuses asked for: only in-flight ones read the running index (small),
only ended ones the completion index (newest first), anything else every status.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from perdure.engine import codec, keyed, keys, timeline
from perdure.engine.errors import EngineError
from perdure.engine.model import EntryKind, Failure, InvocationStatus, Phase
from perdure.engine.status import get_status, journal
from perdure.engine.status_head import StatusHead, encoded_text, read_head
from perdure.engine.storage import PartitionReader

QUERY_FORMAT = 1
"""The ``v`` of a query request; an answer to another version is an error, never a guess."""

STATUSES = (
    "scheduled",
    "pending",
    "running",
    "suspended",
    "backing-off",
    "completed",
    "failed",
    "cancelled",
    "killed",
)
"""What an operator sees: ``pending`` waits in its key's inbox, ``scheduled`` for its start
time, ``backing-off`` for its next attempt after a failed one."""

IN_FLIGHT = frozenset({"running", "suspended", "backing-off"})
ENDED = frozenset({"completed", "failed", "cancelled", "killed"})

SCAN_BUDGET = 20_000
"""Keys one list query reads at most in a partition (~0.2 s of the leader's query thread)."""

MAX_LIMIT = 500
"""Rows one partition returns at most (an answer is one Kafka record)."""

RESULT_BYTES = 16 * 1024
"""How much of each journal result a describe with ``results`` returns."""

_CANCELLED = Failure(409, "the invocation was cancelled")
_KILLED = Failure(409, "the invocation was killed")


class QueryError(EngineError):
    """A query request that cannot be answered as asked (the operator's mistake: a 400)."""


class ReadView(PartitionReader, Protocol):
    """A consistent read of one partition's store (a snapshot)."""

    def scan_range(
        self, start: bytes, end: bytes, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Keys in ``[start, end)``, ascending, or descending if ``reverse``."""
        ...


@dataclass(frozen=True)
class InvocationFilter:
    """Which invocations a list returns; every given field must match."""

    statuses: frozenset[str] = frozenset()
    service: str | None = None
    handler: str | None = None
    key: str | None = None
    created_after_ms: int | None = None
    created_before_ms: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted(self.statuses - set(STATUSES))
        if unknown:
            raise QueryError(f"unknown status {unknown[0]!r}: one of {', '.join(STATUSES)}")

    def to_json(self) -> dict[str, Any]:
        """The filter as a request carries it."""
        doc: dict[str, Any] = {"statuses": sorted(self.statuses)}
        for name in ("service", "handler", "key", "created_after_ms", "created_before_ms"):
            if getattr(self, name) is not None:
                doc[name] = getattr(self, name)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> InvocationFilter:
        """Reads :meth:`to_json`; raises :class:`QueryError` for what is malformed."""
        try:
            return cls(
                frozenset(str(s) for s in doc.get("statuses", ())),
                _opt_str(doc.get("service")),
                _opt_str(doc.get("handler")),
                _opt_str(doc.get("key")),
                _opt_int(doc.get("created_after_ms")),
                _opt_int(doc.get("created_before_ms")),
            )
        except (TypeError, ValueError) as err:
            raise QueryError(f"bad filter: {err}") from None

    def needles(self) -> tuple[bytes, ...]:
        """Bytes every encoded status that passes holds (its target's strings)."""
        texts = (self.service, self.handler, self.key)
        return tuple(encoded_text(t) for t in texts if t is not None)

    def admits(self, head: StatusHead) -> bool:
        """Whether a status with this head may pass (a necessary condition, read without
        decoding the status in full: see engine/status_head.py)."""
        t = head.target
        if (
            (self.service is not None and t.service != self.service)
            or (self.handler is not None and t.handler != self.handler)
            or (self.key is not None and t.key != self.key)
            or (self.created_after_ms is not None and head.created_ms <= self.created_after_ms)
            or (self.created_before_ms is not None and head.created_ms >= self.created_before_ms)
        ):
            return False
        if not self.statuses:
            return True
        if head.phase is Phase.COMPLETED:
            return _ended_status(head.failure) in self.statuses
        if head.phase is Phase.RUNNING:
            return not self.statuses.isdisjoint(IN_FLIGHT)
        return _WAITING[head.phase] in self.statuses

    def matches(self, s: InvocationStatus, status: str) -> bool:
        """Whether ``s`` (whose operator status is ``status``) passes."""
        t = s.target
        return (
            (not self.statuses or status in self.statuses)
            and (self.service is None or t.service == self.service)
            and (self.handler is None or t.handler == self.handler)
            and (self.key is None or t.key == self.key)
            and (self.created_after_ms is None or s.created_ms > self.created_after_ms)
            and (self.created_before_ms is None or s.created_ms < self.created_before_ms)
        )


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"{value!r} is not a number")
    return int(value)


def status_of(s: InvocationStatus, now_ms: int) -> str:
    """The operator's name for where ``s`` is (one of :data:`STATUSES`)."""
    if s.phase is Phase.COMPLETED:
        return _ended_status(s.failure)
    if s.phase is not Phase.RUNNING:
        return _WAITING[s.phase]
    if s.suspended_on:
        return "suspended"
    if s.last_error is not None and s.execute_at_ms is not None and s.execute_at_ms > now_ms:
        return "backing-off"
    return "running"


_WAITING = {Phase.SCHEDULED: "scheduled", Phase.INBOXED: "pending"}


def _ended_status(failure: Failure | None) -> str:
    if failure is None:
        return "completed"
    if failure == _CANCELLED:
        return "cancelled"
    if failure == _KILLED:
        return "killed"
    return "failed"


def summary(s: InvocationStatus, now_ms: int) -> dict[str, Any]:
    """One row of a list: what an invocation is and where it stands, without payloads."""
    status = status_of(s, now_ms)
    row: dict[str, Any] = {
        "id": s.invocation_id,
        "service": s.target.service,
        "handler": s.target.handler,
        "key": s.target.key,
        "status": status,
        "created_ms": s.created_ms,
        "completed_ms": s.completed_ms,
        "attempts": s.retry_count + 1,
        "journal_length": s.journal_length,
        "idempotency_key": s.idempotency_key,
    }
    if s.last_error is not None:
        # The error's last line (``ValueError: ...``); describe shows the whole stack.
        lines = [line for line in s.last_error.splitlines() if line.strip()]
        row["last_error"] = lines[-1] if lines else s.last_error
    if status == "backing-off" or status == "scheduled":
        row["next_attempt_ms"] = s.execute_at_ms
    if s.failure is not None:
        row["failure"] = {"code": s.failure.code, "message": s.failure.message}
    if s.caller is not None:
        row["caller"] = s.caller.invocation_id
    return row


# --- requests ----------------------------------------------------------------------------------


def list_request(flt: InvocationFilter, cursor: str | None, limit: int) -> str:
    """A list query for one partition, from ``cursor`` (a partition's ``next``) on."""
    limit = max(1, min(limit, MAX_LIMIT))
    doc = {"v": QUERY_FORMAT, "kind": "list", "filter": flt.to_json(), "cursor": cursor}
    return json.dumps({**doc, "limit": limit})


def describe_request(invocation_id: str, results: bool = False) -> str:
    """A describe query (``results``: with the journal's results, truncated)."""
    doc = {"v": QUERY_FORMAT, "kind": "describe", "invocation_id": invocation_id}
    return json.dumps({**doc, "results": results})


def state_request(service: str, key: str) -> str:
    """A query of every state value of an object or workflow key."""
    return json.dumps({"v": QUERY_FORMAT, "kind": "state", "service": service, "key": key})


def answer(view: ReadView, request: str, now_ms: int) -> dict[str, Any]:
    """The answer to ``request`` from ``view``; ``{"error": ...}`` for a bad request."""
    try:
        doc = json.loads(request)
        if not isinstance(doc, dict) or doc.get("v") != QUERY_FORMAT:
            raise QueryError(f"query format {doc.get('v') if isinstance(doc, dict) else None!r}")
        kind = doc.get("kind")
        if kind == "list":
            cursor = doc.get("cursor")
            return list_invocations(
                view,
                InvocationFilter.from_json(doc.get("filter") or {}),
                now_ms,
                None if cursor is None else bytes.fromhex(str(cursor)),
                int(doc.get("limit", 100)),
            )
        if kind == "describe":
            return describe(view, str(doc["invocation_id"]), now_ms, bool(doc.get("results")))
        if kind == "state":
            return object_state(view, str(doc["service"]), str(doc["key"]))
        raise QueryError(f"unknown query kind {kind!r}")
    except (QueryError, ValueError, KeyError, TypeError) as err:
        return {"error": str(err) or type(err).__name__}


# --- the reads ---------------------------------------------------------------------------------


def _after(key: bytes) -> bytes:
    return key + b"\x00"


def _end_of(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


def list_invocations(
    view: ReadView,
    flt: InvocationFilter,
    now_ms: int,
    cursor: bytes | None,
    limit: int,
    budget: int = SCAN_BUDGET,
) -> dict[str, Any]:
    """Up to ``limit`` matching invocations of the partition from ``cursor`` on.

    Returns ``rows``, ``scanned`` (keys read) and ``next``: the cursor of the next page, or
    None once the index is read to its end.
    """
    limit = max(1, min(limit, MAX_LIMIT))
    if flt.statuses and flt.statuses <= IN_FLIGHT:
        prefix, reverse = keys.RUNNING, False
    elif flt.statuses and flt.statuses <= ENDED:
        prefix, reverse = keys.EXPIRY, True  # newest completion first
    else:
        prefix, reverse = keys.STATUS, False
    start, end = prefix, _end_of(prefix)
    if cursor is not None:
        if not cursor.startswith(prefix):
            raise QueryError("the cursor belongs to another filter")
        start, end = (start, cursor) if reverse else (_after(cursor), end)
    rows: list[dict[str, Any]] = []
    scanned = 0
    needles = flt.needles()
    for key, value in view.scan_range(start, end, reverse):
        scanned += 1
        s = _status_at(view, flt, needles, prefix, key, value)
        if s is not None and flt.matches(s, status_of(s, now_ms)):
            # Where it was found: the next page of a partition can start after any row.
            rows.append({**summary(s, now_ms), "_pos": key.hex()})
        if len(rows) >= limit or scanned >= budget:
            return {"rows": rows, "scanned": scanned, "next": key.hex()}
    return {"rows": rows, "scanned": scanned, "next": None}


def _status_at(
    view: ReadView,
    flt: InvocationFilter,
    needles: tuple[bytes, ...],
    prefix: bytes,
    key: bytes,
    value: bytes,
) -> InvocationStatus | None:
    """The status an index entry points at, decoded only if its bytes and head pass ``flt``."""
    if prefix == keys.STATUS:
        raw: bytes | None = value
    elif prefix == keys.RUNNING:
        raw = view.get(keys.status_key(keys.id_of_running_key(key)))
    else:
        if value and flt.statuses and value.decode() not in flt.statuses:
            return None  # the entry says how it ended (keys.expiry_key)
        raw = view.get(keys.status_key(keys.id_of_expiry_key(key)[1]))
    if raw is None or not all(n in raw for n in needles):
        return None
    head = read_head(raw)
    if head is not None and not flt.admits(head):
        return None
    return codec.decode_status(raw)


def describe(view: ReadView, invocation_id: str, now_ms: int, results: bool) -> dict[str, Any]:
    """Everything the partition knows of one invocation, its journal included."""
    s = get_status(view, invocation_id)
    if s is None:
        return {"not_found": invocation_id}
    doc = summary(s, now_ms)
    if s.last_error is not None:
        doc["last_error"] = s.last_error
    doc["handler_kind"] = s.handler_kind.value or "service"
    doc["headers"] = dict(s.headers)
    doc["input_bytes"] = len(view.get(keys.input_key(invocation_id)) or b"")
    doc["waiting_requests"] = sum(1 for _ in view.scan(keys.waiter_prefix(invocation_id)))
    doc["suspended_on"] = list(s.suspended_on)
    doc["cancel_requested"] = s.cancel_requested
    if s.result is not None:
        doc["result_bytes"] = len(s.result)
        if results:
            doc["result"] = _payload(s.result)
    times = timeline.read(view, invocation_id)
    doc["failed_attempts"] = times.failed_attempts
    entries = []
    for index, entry in enumerate(journal(view, invocation_id)):
        row: dict[str, Any] = {
            "index": index,
            "kind": entry.kind.value,
            "name": entry.name,
            "status": "completed" if entry.completed else "pending",
            "journaled_ms": times.journaled_ms.get(index),
        }
        if entry.completed:
            row["completed_ms"] = times.completed_ms.get(index, row["journaled_ms"])
        if entry.kind is EntryKind.SLEEP and entry.value:
            row["wake_at_ms"] = int(entry.value)  # a sleep journals when it wakes
        elif entry.value is not None:
            row["result_bytes"] = len(entry.value)
            if results:
                row["result"] = _payload(entry.value)
        if entry.failure is not None:
            row["failure"] = {"code": entry.failure.code, "message": entry.failure.message}
        if entry.call is not None:
            t = entry.call.target
            row["call"] = {"service": t.service, "handler": t.handler, "key": t.key}
            row["callee"] = entry.call.callee_id
        entries.append(row)
    doc["journal"] = entries
    return doc


def _payload(data: bytes) -> dict[str, Any]:
    """A result as text where it is UTF-8 (JSON mostly), else base64; cut at RESULT_BYTES."""
    cut = data[:RESULT_BYTES]
    out: dict[str, Any] = {"truncated": len(data) > RESULT_BYTES}
    try:
        out["text"] = cut.decode()
    except UnicodeDecodeError:
        out["base64"] = base64.b64encode(cut).decode()
    return out


def state_version(entries: tuple[tuple[str, bytes], ...]) -> str:
    """A digest of a key's whole state: it changes whenever any value does."""
    digest = hashlib.sha256()
    for name, value in sorted(entries):
        digest.update(len(name).to_bytes(4, "big") + name.encode())
        digest.update(len(value).to_bytes(4, "big") + value)
    return digest.hexdigest()[:32]


def object_state(view: ReadView, service: str, key: str) -> dict[str, Any]:
    """Every state value of ``service``'s key ``key``, its version, and who holds the key."""
    entries = keyed.read_state(view, service, key)
    holder = view.get(keys.lock_key(service, key))
    return {
        "service": service,
        "key": key,
        "version": state_version(entries),
        "state": {name: _payload(value) for name, value in entries},
        "locked_by": None if holder is None else holder.decode(),
    }
