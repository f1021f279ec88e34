"""The admin API's view of invocations and state: list, describe, cancel, kill, read state.

Every read is a :class:`~engine.records.Query` appended to the partitions concerned and
answered by their leaders on this process's responses partition (engine/queries.py), so an
answer is as of the query's place in the log, never older: an invocation whose caller was
answered is shown completed. A list asks every partition at once and merges their pages; its
cursor holds where each partition is (opaque to clients, base64url JSON).

Paths (Restate's where Restate has one): ``GET /invocations``, ``GET /invocations/{id}``,
``DELETE /invocations/{id}?mode=cancel|kill|purge``, ``PATCH /invocations/{id}/retry-now``,
``GET /services``, ``GET /services/{name}``,
``GET /services/{name}/state/{key}``, ``POST /services/{name}/state`` (an edit, through the
log like everything that changes state: engine/state_edits.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from perdure.engine import queries
from perdure.engine.errors import InvalidId
from perdure.engine.ids import InvocationId, partition_for_key
from perdure.engine.model import Failure, Reply
from perdure.engine.queries import InvocationFilter, QueryError
from perdure.engine.records import Command, Purge, ResponseStatus, RetryNow, SetState
from perdure.engine.records import Query as QueryRecord
from perdure.engine.records import Response as LogResponse
from perdure.ingress.answers import error_answer
from perdure.ingress.bodies import strict_loads
from perdure.ingress.errors import IngressError, checked_name

if TYPE_CHECKING:
    from perdure.ingress.app import Ingress

ASK_AGAIN_S = 2.0
"""A partition that did not answer is asked again (its leader may have changed meanwhile)."""

ANSWER_TIMEOUT_S = 15.0
"""How long a partition may take to answer before the request fails with 503."""

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class Operations:
    """Queries and commands about invocations, through ``core``'s log client."""

    def __init__(self, core: Ingress) -> None:
        self.core = core

    async def ask(self, partition: int, request: str) -> dict[str, Any]:
        """The answer of ``partition``'s leader to ``request``.

        Raises:
            IngressError: 503 if no leader answered within :data:`ANSWER_TIMEOUT_S`, 400 for a
                request the partition refused.
        """
        core = self.core
        request_id = uuid.uuid4().hex
        record = QueryRecord(Reply(core.reply_partition, request_id), request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ANSWER_TIMEOUT_S
        with core.waiter(request_id) as fut:
            while True:
                await core.append(partition, None, record)
                wait = min(ASK_AGAIN_S, deadline - loop.time())
                try:
                    answer = await asyncio.wait_for(asyncio.shield(fut), max(wait, 0.0))
                    break
                except TimeoutError:
                    if loop.time() >= deadline:
                        raise IngressError(
                            503,
                            f"partition {partition} did not answer in {ANSWER_TIMEOUT_S:.0f} s: "
                            "it has no leader now (is a worker running?), or its leader is "
                            "too busy to answer",
                        ) from None
        doc: dict[str, Any] = json.loads(answer.result or b"{}")
        if "error" in doc:
            raise IngressError(400, str(doc["error"]))
        return doc

    @property
    def partitions(self) -> int:
        return self.core.log_partitions

    async def list(self, flt: InvocationFilter, cursor: str | None, limit: int) -> dict[str, Any]:
        """A page of invocations over every partition, and the cursor of the next one."""
        positions = _read_cursor(cursor, flt, self.partitions)
        if flt.key is not None:
            # A key's invocations all live in its partition (engine/ids.py): ask it alone.
            home = partition_for_key(flt.key.encode(), self.partitions)
            positions = {p: at if p == home else _DONE for p, at in positions.items()}
        asked = [p for p, at in positions.items() if at != _DONE]
        pages = await asyncio.gather(
            *(self.ask(p, queries.list_request(flt, positions[p] or None, limit)) for p in asked)
        )
        by_partition = dict(zip(asked, pages, strict=True))
        taken: list[dict[str, Any]] = []
        rows = {p: list(page["rows"]) for p, page in by_partition.items()}
        used = dict.fromkeys(asked, 0)
        # Round robin: each partition's rows are in its index's order, and the next page of
        # a partition starts after the last row taken from it.
        while len(taken) < limit and any(used[p] < len(rows[p]) for p in asked):
            for p in asked:
                if used[p] < len(rows[p]) and len(taken) < limit:
                    taken.append({**rows[p][used[p]], "partition": p})
                    used[p] += 1
        scanned = 0
        for p, page in by_partition.items():
            scanned += int(page.get("scanned", 0))
            if used[p] == len(rows[p]):
                positions[p] = page["next"] if page["next"] is not None else _DONE
            else:
                positions[p] = rows[p][used[p] - 1]["_pos"] if used[p] else positions[p]
        for row in taken:
            row.pop("_pos", None)
        done = all(at == _DONE for at in positions.values())
        return {
            "invocations": taken,
            "next_cursor": None if done else _write_cursor(positions, flt),
            "scanned": scanned,
        }

    async def describe(self, invocation_id: str, results: bool) -> dict[str, Any]:
        """One invocation with its journal; 404 if its partition does not know it."""
        inv = _parse_id(invocation_id)
        doc = await self.ask(
            inv.partition(self.partitions), queries.describe_request(invocation_id, results)
        )
        if "not_found" in doc:
            raise IngressError(404, f"invocation {invocation_id} not found")
        return doc

    async def state(self, service: str, key: str) -> dict[str, Any]:
        """Every state value of an object or workflow key, with its version."""
        entry = self.service_entry(service)
        if entry.get("kind") not in ("object", "workflow"):
            raise IngressError(400, f"service {service!r} is a plain service: it has no state")
        checked_name(key, "the key")
        partition = partition_for_key(key.encode(), self.partitions)
        return await self.ask(partition, queries.state_request(service, key))

    async def edit_state(self, service: str, body: Any) -> Response:
        """Replaces a key's whole state if its version is still the one given (409 if not).

        The body is Restate's: ``object_key``, ``version`` (from ``GET .../state/{key}``),
        ``new_state`` mapping names to values: a list of byte values (Restate's form) is
        stored as those bytes, anything else as its JSON.
        """
        entry = self.service_entry(service)
        if entry.get("kind") not in ("object", "workflow"):
            raise IngressError(400, f"service {service!r} is a plain service: it has no state")
        if not isinstance(body, dict):
            raise IngressError(400, "the body must be a JSON object")
        key, version, new_state = body.get("object_key"), body.get("version"), body.get("new_state")
        if not isinstance(key, str) or not isinstance(version, str):
            raise IngressError(400, "object_key and version are required strings")
        if not isinstance(new_state, dict):
            raise IngressError(400, "new_state must be an object of state names to values")
        checked_name(key, "object_key")
        for name in new_state:
            checked_name(str(name), "a state name")
        values = tuple(sorted((str(name), _state_bytes(v)) for name, v in new_state.items()))
        answer = await self._once(
            partition_for_key(key.encode(), self.partitions),
            lambda reply: SetState(service, key, version, values, reply),
            "the key's partition did not answer: the edit may apply later",
        )
        if answer.status is ResponseStatus.ACCEPTED:
            new_version = (answer.result or b"").decode()
            return JSONResponse({"object_key": key, "version": new_version})
        failed = answer.failure or Failure(500, "unexpected answer")
        return error_answer(failed.code, failed.message)

    async def _once(
        self, partition: int, record: Callable[[Reply], Command], unanswered: str
    ) -> LogResponse:
        """Appends one command that changes something (never appended twice: it is not a
        read) and waits for its partition's answer; 503 ``unanswered`` after the timeout."""
        core = self.core
        request_id = uuid.uuid4().hex
        with core.waiter(request_id) as fut:
            reply = Reply(core.reply_partition, request_id)
            await core.append(partition, None, record(reply))
            try:
                answer: LogResponse = await asyncio.wait_for(fut, ANSWER_TIMEOUT_S)
            except TimeoutError:
                raise IngressError(503, unanswered) from None
        return answer

    async def command(self, invocation_id: str, kind: type[Purge] | type[RetryNow]) -> Response:
        """Purges an invocation or retries it now; 202 when its partition took the command."""
        inv = _parse_id(invocation_id)
        answer = await self._once(
            inv.partition(self.partitions),
            lambda reply: kind(invocation_id, reply),
            "the invocation's partition did not answer: the command may apply later",
        )
        if answer.status is ResponseStatus.ACCEPTED:
            done = "purged" if kind is Purge else "retrying"
            return JSONResponse({"invocationId": invocation_id, "status": done}, status_code=202)
        failed = answer.failure or Failure(500, "unexpected answer")
        return error_answer(failed.code, failed.message, invocation_id)

    async def end(self, invocation_id: str, mode: str) -> Response:
        """Cancels, kills or purges an invocation (Restate's ``DELETE /invocations/{id}``)."""
        if mode == "purge":
            return await self.command(invocation_id, Purge)
        if mode not in ("cancel", "kill"):
            raise IngressError(400, f"mode must be cancel, kill or purge, not {mode!r}")
        _parse_id(invocation_id)
        response = await self.core.cancel(invocation_id, kill=mode == "kill")
        if response.status is ResponseStatus.ACCEPTED:
            return JSONResponse({"invocationId": invocation_id, "status": mode}, status_code=202)
        failed = response.failure or Failure(500, "unexpected answer")
        return error_answer(failed.code, failed.message, invocation_id)

    def services(self) -> dict[str, dict[str, Any]]:
        registry = self.core.registry
        if registry is None or not self.core.ready:
            raise IngressError(503, "the service registry is loading")
        return dict(registry.services)

    def service_entry(self, name: str) -> dict[str, Any]:
        entry = self.services().get(name)
        if entry is None:
            raise IngressError(404, f"service {name!r} not found")
        return entry


_DONE = "-"
"""A partition's cursor position once its index is read to its end."""


def _state_bytes(value: object) -> bytes:
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value)
    return json.dumps(value).encode()


def _parse_id(invocation_id: str) -> InvocationId:
    try:
        return InvocationId.parse(invocation_id)
    except InvalidId as err:
        raise IngressError(400, str(err)) from None


def _filter_digest(flt: InvocationFilter) -> str:
    return json.dumps(flt.to_json(), sort_keys=True)


def _write_cursor(positions: dict[int, str | None], flt: InvocationFilter) -> str:
    doc = {"v": 1, "f": _filter_digest(flt), "p": {str(p): at for p, at in positions.items()}}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


def _read_cursor(
    cursor: str | None, flt: InvocationFilter, partitions: int
) -> dict[int, str | None]:
    if cursor is None:
        return dict.fromkeys(range(partitions))
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        doc = json.loads(base64.urlsafe_b64decode(padded))
        positions = {int(p): at for p, at in doc["p"].items()}
        same = doc["f"] == _filter_digest(flt)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise IngressError(400, "the cursor is not one this API returned") from None
    if not same:
        raise IngressError(400, "the cursor belongs to another filter: ask again without it")
    if set(positions) != set(range(partitions)):
        raise IngressError(400, "the cursor is of another partition count")
    return positions


def _time_ms(value: str | None, name: str) -> int | None:
    """Milliseconds since the epoch, or an ISO 8601 time (UTC unless it says otherwise)."""
    if value is None or value == "":
        return None
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise IngressError(
            400, f"{name}: {value!r} is neither milliseconds nor an ISO 8601 time"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def invocation_filter(
    status: str | None,
    service: str | None,
    handler: str | None,
    key: str | None,
    created_after: str | None,
    created_before: str | None,
) -> InvocationFilter:
    """The filter of a ``GET /invocations``; 400 for an unknown status or a bad time."""
    statuses = frozenset(s.strip() for s in (status or "").split(",") if s.strip())
    try:
        return InvocationFilter(
            statuses,
            service or None,
            handler or None,
            key,
            _time_ms(created_after, "created_after"),
            _time_ms(created_before, "created_before"),
        )
    except QueryError as err:
        raise IngressError(400, str(err)) from None


def register_operations(app: FastAPI, ops: Operations) -> None:
    """Adds the invocation, service and state paths to the admin's app."""

    @app.get("/invocations")
    async def list_invocations(
        status: str | None = Query(
            None, description="comma-separated: " + ", ".join(queries.STATUSES)
        ),
        service: str | None = None,
        handler: str | None = None,
        key: str | None = None,
        created_after: str | None = Query(None, description="ms since the epoch or ISO 8601"),
        created_before: str | None = Query(None, description="ms since the epoch or ISO 8601"),
        limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
        cursor: str | None = None,
    ) -> Any:
        """Invocations of every partition matching the filter, a page at a time."""
        flt = invocation_filter(status, service, handler, key, created_after, created_before)
        return await ops.list(flt, cursor, limit)

    @app.get("/invocations/{invocation_id}")
    async def describe_invocation(invocation_id: str, results: bool = False) -> Any:
        """One invocation: target, status, attempts, last error, journal (results on request)."""
        return await ops.describe(invocation_id, results)

    @app.delete("/invocations/{invocation_id}", status_code=202)
    async def end_invocation(invocation_id: str, mode: str = "cancel") -> Response:
        """Cancels (default), kills (``?mode=kill``) or purges (``?mode=purge``, a completed
        one only) an invocation; 202 when taken."""
        return await ops.end(invocation_id, mode)

    @app.patch("/invocations/{invocation_id}/retry-now", status_code=202)
    async def retry_now(invocation_id: str) -> Response:
        """Starts the next attempt of an invocation backing off after a failure, now."""
        return await ops.command(invocation_id, RetryNow)

    @app.get("/services")
    async def list_services() -> Any:
        """Every service the workers host: kind, handlers, the worker that registered it."""
        return {"services": [_service_doc(e) for _, e in sorted(ops.services().items())]}

    @app.get("/services/{name}")
    async def get_service(name: str) -> Any:
        """One service."""
        return _service_doc(ops.service_entry(name))

    @app.post("/services/{name}/state")
    async def edit_state(name: str, request: Request) -> Response:
        """Replaces a key's state if its version did not move (409 if it did)."""
        try:
            body = strict_loads(await request.body())
        except (ValueError, RecursionError):
            raise IngressError(400, "the body is not valid JSON") from None
        return await ops.edit_state(name, body)

    @app.get("/services/{name}/state/{key}")
    async def get_state(name: str, key: str) -> Any:
        """Every state value of an object or workflow key, and its version."""
        return await ops.state(name, key)


def _service_doc(entry: dict[str, Any]) -> dict[str, Any]:
    handlers = [
        {"name": name, **{k: v for k, v in spec.items() if k != "subscriptions"}}
        for name, spec in sorted(entry.get("handlers", {}).items())
    ]
    return {
        "name": entry.get("name"),
        "kind": entry.get("kind"),
        "handlers": handlers,
        "worker": entry.get("worker"),
    }
