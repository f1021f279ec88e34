"""The HTTP ingress (FastAPI): Restate-compatible paths that turn calls into log records.

A 2xx means the invocation record is durable in Kafka; nothing is accepted otherwise. Errors are
JSON ``{"code": N, "message": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from confluent_kafka import KafkaException
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp

from perdure.engine.errors import InvalidId
from perdure.engine.ids import (
    InvocationId,
    murmur2,
    parse_any_awakeable_id,
    workflow_run_id,
)
from perdure.engine.model import Failure, HandlerKind, Reply
from perdure.engine.records import (
    Attach,
    Cancel,
    CompleteAwakeable,
    Detach,
    Envelope,
    Invoke,
    ResponseStatus,
)
from perdure.engine.records import Response as LogResponse
from perdure.engine.replication import ReplicationError
from perdure.ingress.access import AccessGuard
from perdure.ingress.answers import (
    StillRunning,
    answer_of,
    error_answer,
    install_error_handlers,
    still_running_answer,
)
from perdure.ingress.bodies import check_json, read_body, rejection_reason
from perdure.ingress.calls import CallFastPath, serve_call
from perdure.ingress.config import IngressSettings
from perdure.ingress.errors import IngressError
from perdure.ingress.health import KafkaProbe
from perdure.ingress.kafka import LogProducer, ResponseReader, prepare_topics
from perdure.ingress.local_log import LocalLog, LocalProducer, LocalRegistry
from perdure.ingress.lookups import register_lookups
from perdure.ingress.metrics import IngressMetrics
from perdure.ingress.openapi import document as openapi_document
from perdure.ingress.routing import Route, route
from perdure.process.tables import ServiceRegistry

log = logging.getLogger("perdure.ingress")

_EXISTS = (ResponseStatus.NOT_READY, ResponseStatus.OK, ResponseStatus.FAILED)
"""Answers to a non-blocking re-ask that show the invocation exists."""
Gone = Callable[[], Awaitable[bool]]


class Ingress:
    """The state of one ingress replica: Kafka clients and the requests waiting for answers."""

    def __init__(self, settings: IngressSettings, serves_http: bool = True) -> None:
        self.settings = settings
        self.serves_http = serves_http
        """False in a process that only appends (the admin's subscriptions)."""
        self.names = settings.names
        self.replica_id = uuid.uuid4().hex
        self.waiters: dict[str, asyncio.Future[LogResponse]] = {}
        self.log_partitions = 0
        self.reply_partition = 0
        self.producer: LogProducer | LocalProducer | None = None
        self.registry: ServiceRegistry | LocalRegistry | None = None
        self.responses: ResponseReader | None = None
        self.probe: KafkaProbe | None = None
        self.metrics = IngressMetrics()
        self._local: LocalLog | None = None
        self.stopping = False
        """Set on SIGTERM: readiness says 503 so that load balancers send calls elsewhere,
        while this replica still serves those it gets (see ``shutdown_delay_s``)."""

    def use_local_log(self, local: LocalLog) -> None:
        """Serves over a log in this process (``perdure dev --embedded``) instead of Kafka:
        :meth:`start` then connects to nothing."""
        self.log_partitions = 1
        self.reply_partition = 0
        self.producer = LocalProducer(local)
        self.registry = LocalRegistry(local)
        local.on_response(self._deliver)
        self._local = local

    async def start(self) -> None:
        if self._local is not None:
            await self._local.start()
            s = self.settings
            log.info("ingress on http://%s:%d over the embedded log", s.host, s.port)
            return
        s = self.settings
        try:
            self.log_partitions, response_partitions = await asyncio.to_thread(
                prepare_topics,
                s.bootstrap,
                self.names,
                s.partitions,
                s.segment_bytes,
                s.replication_factor,
                s.min_insync_replicas,
            )
        except KafkaException as err:
            log.error("cannot reach Kafka at %s: %s", s.bootstrap, err)
            raise
        except ReplicationError as err:
            log.error("cannot create the cluster's topics: %s", err)
            raise
        self.reply_partition = (
            murmur2(self.replica_id.encode()) & 0x7FFFFFFF
        ) % response_partitions
        loop = asyncio.get_running_loop()
        self.probe = KafkaProbe(s.bootstrap)
        self.producer = LogProducer(s.bootstrap, self.names, s.produce_timeout_s)
        self.registry = await asyncio.to_thread(
            ServiceRegistry, s.bootstrap, self.names.registry_topic
        )
        self.responses = await asyncio.to_thread(
            ResponseReader, s.bootstrap, self.names, self.reply_partition, loop, self._deliver
        )
        log.info(
            "%s: cluster %r, %d log partitions, answers on partition %d",
            f"ingress on http://{s.host}:{s.port}" if self.serves_http else "log client",
            s.cluster,
            self.log_partitions,
            self.reply_partition,
        )

    async def stop(self) -> None:
        if self._local is not None:
            await self._local.stop()
        for part in (self.responses, self.registry):
            if part is not None:
                await asyncio.to_thread(part.close)
        if self.producer is not None:
            await asyncio.to_thread(self.producer.close)
        if self.probe is not None:
            await asyncio.to_thread(self.probe.close)

    @property
    def ready(self) -> bool:
        return self.registry is not None and self.registry.ready.is_set()

    def not_ready(self) -> str | None:
        """Why this replica cannot serve now, in words (None: it can)."""
        if self.stopping:
            return "this replica is shutting down; send calls to another one"
        if self.probe is not None and (why := self.probe.unreachable()) is not None:
            return why
        if self._local is not None and (why := self._local.problem()) is not None:
            return why
        if not self.ready:
            return "the service registry is loading"
        return None

    def _deliver(self, response: LogResponse) -> None:
        fut = self.waiters.get(response.request_id)
        if fut is not None and not fut.done():
            fut.set_result(response)

    # -- requests -------------------------------------------------------------------------------

    def route(self, segments: list[str]) -> Route:
        if self.registry is None or not self.ready:
            raise IngressError(503, "the ingress is not ready yet: the service registry is loading")
        return route(segments, self.registry.services)

    async def append(self, partition: int, key: bytes | None, record: Any) -> None:
        assert self.producer is not None
        if self.probe is not None and (why := self.probe.unreachable()) is not None:
            raise IngressError(503, f"{why}; nothing was logged, try again later")
        try:
            await self.producer.append(partition, key, Envelope(record))
        except KafkaException as err:
            raise IngressError(503, f"the log cannot take the record: {err}") from err

    async def invoke(
        self,
        where: Route,
        body: bytes,
        idempotency_key: str | None,
        headers: tuple[tuple[str, str], ...],
        gone: Gone | None = None,
        delay_ms: int = 0,
    ) -> tuple[str, LogResponse | None]:
        if idempotency_key and where.handler_kind is HandlerKind.WORKFLOW:
            # Restate 1.7.12's own words for it (checked against the server).
            raise IngressError(
                400,
                "cannot use the idempotency key with workflow handlers. The handler invocation "
                "will already be idempotent by the workflow key itself.",
            )
        inv = where.invocation_id(idempotency_key)
        invocation_id = str(inv)
        # A send waits only where the partition must say whether it is new.
        wait = not where.send or bool(idempotency_key) or where.handler_kind is HandlerKind.WORKFLOW
        request_id = uuid.uuid4().hex
        reply = Reply(self.reply_partition, request_id) if wait else None
        record = Invoke(
            invocation_id,
            where.target,
            body,
            reply,
            idempotency_key or None,
            where.send,
            headers,
            where.handler_kind,
            delay_ms=delay_ms,
        )
        key = where.target.key.encode() if where.target.key is not None else inv.uid
        partition = inv.partition(self.log_partitions)
        if not wait:
            await self.append(partition, key, record)
            return invocation_id, None
        with self.waiter(request_id) as fut:
            await self.append(partition, key, record)
            response = await self.await_answer(
                fut,
                inv,
                request_id,
                gone=gone,
                timeout_s=self.settings.call_timeout_s,
                # A send asks again only whether the invocation exists: a blocking re-ask would
                # wait for its outcome (a workflow waiting on a promise: for ever).
                reattach_block=not where.send,
            )
            if where.send and response.status in _EXISTS:
                response = LogResponse(request_id, invocation_id, ResponseStatus.ACCEPTED)
            return invocation_id, response

    async def complete_awakeable(
        self, invocation_id: str, index: int, value: bytes | None, failure: Failure | None
    ) -> LogResponse:
        inv = InvocationId.parse(invocation_id)
        request_id = uuid.uuid4().hex
        reply = Reply(self.reply_partition, request_id)
        record = CompleteAwakeable(invocation_id, index, value, failure, reply)
        with self.waiter(request_id) as fut:
            await self.append(inv.partition(self.log_partitions), None, record)
            return await self.await_answer(fut, inv, request_id, reattach=False)

    async def cancel(self, invocation_id: str, kill: bool) -> LogResponse:
        try:
            inv = InvocationId.parse(invocation_id)
        except InvalidId as err:
            raise IngressError(400, str(err)) from err
        request_id = uuid.uuid4().hex
        reply = Reply(self.reply_partition, request_id)
        with self.waiter(request_id) as fut:
            await self.append(
                inv.partition(self.log_partitions), None, Cancel(invocation_id, kill, reply)
            )
            return await self.await_answer(fut, inv, request_id, reattach=False)

    async def attach(
        self, invocation_id: str, block: bool, gone: Gone | None = None
    ) -> LogResponse:
        try:
            inv = InvocationId.parse(invocation_id)
        except InvalidId as err:
            raise IngressError(400, str(err)) from err
        request_id = uuid.uuid4().hex
        with self.waiter(request_id) as fut:
            reply = Reply(self.reply_partition, request_id)
            await self.append(
                inv.partition(self.log_partitions), None, Attach(invocation_id, reply, block)
            )
            return await self.await_answer(fut, inv, request_id, reattach=block, gone=gone)

    @contextlib.contextmanager
    def waiter(self, request_id: str) -> Any:
        """Registers a future for the answer to ``request_id`` while in the block."""
        fut: asyncio.Future[LogResponse] = asyncio.get_running_loop().create_future()
        self.waiters[request_id] = fut
        try:
            yield fut
        finally:
            self.waiters.pop(request_id, None)

    async def await_answer(
        self,
        fut: asyncio.Future[LogResponse],
        inv: InvocationId,
        request_id: str,
        reattach: bool = True,
        gone: Gone | None = None,
        timeout_s: float = 0.0,
        reattach_block: bool = True,
    ) -> LogResponse:
        """Waits for the answer; asks the partition again now and then, so a lost answer is
        asked for again (with a growing pause).

        Once the request's record is in the log, nothing here answers as if it were not: an
        outage of Kafka only delays the next ask, and a request that waits longer than
        ``timeout_s`` gets :class:`StillRunning` (a 202 with the invocation id).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s if timeout_s > 0 else None
        interval = self.settings.reattach_interval_s
        while True:
            wait = interval if deadline is None else min(interval, deadline - loop.time())
            try:
                answer = await asyncio.wait_for(asyncio.shield(fut), max(wait, 0.0))
                if reattach_block or answer.status is not ResponseStatus.NOT_FOUND:
                    return answer
                # A non-blocking re-ask overtook the record it asks about: wait again.
                fut = self.waiters[request_id] = asyncio.get_running_loop().create_future()
                continue
            except TimeoutError:
                pass
            if gone is not None and await gone():
                # Nobody to answer; the invocation itself goes on and can be attached to.
                await self._detach(inv, request_id)
                raise IngressError(499, "the client closed the request") from None
            if deadline is not None and loop.time() >= deadline:
                await self._detach(inv, request_id)
                raise StillRunning(str(inv))
            interval = min(interval * 2, self.settings.reattach_max_interval_s)
            if not reattach:
                continue
            reply = Reply(self.reply_partition, request_id)
            try:
                attach = Attach(str(inv), reply, reattach_block)
                await self.append(inv.partition(self.log_partitions), None, attach)
            except IngressError as err:
                log.warning("invocation %s: cannot ask for its outcome yet: %s", inv, err.message)

    async def _detach(self, inv: InvocationId, request_id: str) -> None:
        """Tells the partition a request stopped waiting (best effort: waiters also go when
        the invocation completes)."""
        try:
            record = Detach(str(inv), request_id)
            await self.append(inv.partition(self.log_partitions), None, record)
        except IngressError as err:
            log.info("invocation %s: detach not logged: %s", inv, err.message)


def create_app(settings: IngressSettings | None = None, ingress: Ingress | None = None) -> ASGIApp:
    """The ingress's ASGI app: the access guard, the calls' fast path, then the FastAPI app
    (``/restate/...``, health, docs, every other method), whose lifespan starts ``ingress``
    (by default a new one)."""
    settings = settings or IngressSettings.from_env()
    ingress = ingress or Ingress(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await ingress.start()
        try:
            yield
        finally:
            await ingress.stop()

    app = FastAPI(
        title="Perdure ingress",
        description="Call the cluster's handlers. Every path below comes from the service "
        "registry: one per handler, with the JSON schemas of its input and output.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.ingress = ingress
    fixed_routes = app.openapi

    def openapi() -> dict[str, Any]:
        app.openapi_schema = None  # rebuilt each time: the registry changes
        services = ingress.registry.services if ingress.registry is not None else {}
        return openapi_document(services, fixed_routes())

    app.openapi = openapi  # type: ignore[method-assign]

    install_error_handlers(app)

    @app.exception_handler(StillRunning)
    async def still_running(_request: Request, err: StillRunning) -> JSONResponse:
        return still_running_answer(err)

    register_lookups(app, ingress)

    @app.get("/health")
    @app.get("/health/ready")
    @app.get("/restate/health")
    async def health() -> JSONResponse:
        """Readiness: 200 when Kafka answers and the service registry is read, else 503."""
        why = ingress.not_ready()
        if why is not None:
            return error_answer(503, f"not ready: {why}")
        return JSONResponse({"status": "ok", "pid": os.getpid()})

    @app.get("/health/live")
    async def live() -> JSONResponse:
        """Liveness: the process answers (restart it if not); Kafka's state is not checked."""
        return JSONResponse({"status": "live", "pid": os.getpid()})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(ingress.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/restate/invocation/{invocation_id}/output")
    async def output(invocation_id: str) -> Response:
        return answer_of(await ingress.attach(invocation_id, block=False), invocation_id)

    @app.get("/restate/workflow/{name}/{workflow_id}/output")
    async def workflow_output(name: str, workflow_id: str) -> Response:
        invocation_id = str(workflow_run_id(name, workflow_id))
        return answer_of(await ingress.attach(invocation_id, block=False), invocation_id)

    @app.get("/restate/workflow/{name}/{workflow_id}/attach")
    async def workflow_attach(name: str, workflow_id: str, request: Request) -> Response:
        invocation_id = str(workflow_run_id(name, workflow_id))
        response = await ingress.attach(invocation_id, True, request.is_disconnected)
        return answer_of(response, invocation_id)

    @app.delete("/restate/invocation/{invocation_id}")
    async def cancel(invocation_id: str, mode: str = "cancel") -> Response:
        """Cancels (default) or kills (``?mode=kill``) an invocation; 202 when taken."""
        if mode not in ("cancel", "kill"):
            raise IngressError(400, f"mode must be cancel or kill, not {mode!r}")
        response = await ingress.cancel(invocation_id, kill=mode == "kill")
        if response.status is ResponseStatus.ACCEPTED:
            return JSONResponse({"invocationId": invocation_id, "status": mode}, status_code=202)
        failed = response.failure or Failure(500, "unexpected answer")
        return error_answer(failed.code, failed.message, invocation_id)

    @app.get("/restate/invocation/{invocation_id}/attach")
    async def attach(invocation_id: str, request: Request) -> Response:
        response = await ingress.attach(invocation_id, True, request.is_disconnected)
        return answer_of(response, invocation_id)

    @app.post("/restate/awakeables/{awakeable}/{action}")
    @app.post("/restate/a/{awakeable}/{action}")
    async def complete_awakeable(awakeable: str, action: str, request: Request) -> Response:
        if action not in ("resolve", "reject"):
            raise IngressError(404, f"no such path: {request.url.path}")
        try:
            invocation_id, index = parse_any_awakeable_id(awakeable)
        except InvalidId as err:
            raise IngressError(404, f"awakeable {awakeable[:100]!r} not found: {err}") from None
        body = await read_body(request, settings.max_body_bytes)
        value: bytes | None = None
        failure: Failure | None = None
        if action == "resolve":
            if body.strip():
                check_json(body, "the body")
            value = body or b"null"
        else:
            failure = Failure(500, rejection_reason(body))
        response = await ingress.complete_awakeable(invocation_id, index, value, failure)
        if response.status is ResponseStatus.OK:
            return Response(status_code=202)
        failed = response.failure or Failure(500, "unexpected answer")
        return error_answer(failed.code, failed.message)

    # CallFastPath serves a POST to a handler's path before the app sees it; this route still
    # serves the POSTs under /restate/ no other route takes (/restate/send/..., Restate's own
    # spelling of a send), and makes any other method on a handler's path a 405.
    @app.api_route("/restate/call/{path:path}", methods=["GET", "POST"], include_in_schema=False)
    @app.post("/{path:path}", include_in_schema=False)
    async def call(path: str, request: Request) -> Response:
        return await serve_call(ingress, settings, request)

    # Around the app, not inside it as its middleware: FastAPI's own layers (error pages,
    # telemetry, body limits: about a tenth of the ingress's CPU per call) then run only for
    # the paths the app serves, and a call goes from uvicorn to CallFastPath directly. The
    # guard is outermost: nothing runs for a request without the token.
    fast = CallFastPath(app, ingress=ingress, settings=settings)
    return AccessGuard(fast, token=settings.ingress_token, what="the ingress")
