"""The admin process (``perdure admin``, port 9070): invocations, services, state, subscriptions.

It runs the cluster's subscriptions too: one :class:`~ingress.subscriber.SubscriptionRunner` per
subscription in the table, each a member of that subscription's consumer group, so several admin
processes share a subscription's partitions. Subscriptions declared in code
(``@svc.handler(subscribe=...)``) are created when the registry shows a worker hosting them, and
deleted when it no longer declares them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from perdure.engine import subscriptions
from perdure.engine.subscriptions import InvalidSubscription, Subscription
from perdure.ingress.access import AccessGuard
from perdure.ingress.admin.deployments import register_deployments
from perdure.ingress.admin.forwarder import Forwarder, ForwarderMetrics
from perdure.ingress.admin.metrics import AdminMetrics, AdminMetricsMiddleware
from perdure.ingress.admin.operations import Operations, register_operations
from perdure.ingress.answers import error_answer, install_error_handlers
from perdure.ingress.app import Ingress
from perdure.ingress.config import AdminSettings
from perdure.ingress.errors import IngressError
from perdure.ingress.placement import placement
from perdure.ingress.subscriptions.metrics import SubscriptionMetrics
from perdure.ingress.subscriptions.subscriber import SubscriptionRunner
from perdure.ingress.subscriptions.table import SubscriptionTable
from perdure.process.kafka_clusters import KafkaClusters, UnknownCluster
from perdure.process.kafka_settings import client_settings

log = logging.getLogger("perdure.admin")

RECONCILE_INTERVAL_S = 0.5

UI_PATH = "/ui"
"""Where the web UI is served (``/`` redirects there)."""
UI_FILES = Path(__file__).with_name("webui")


class Admin:
    """The state of one admin process: the subscription table, the runners, the forwarder."""

    def __init__(self, settings: AdminSettings) -> None:
        self.settings = settings
        self.core = Ingress(settings.ingress(), serves_http=False)
        self.clusters = KafkaClusters.from_env(settings.bootstrap, settings.kafka_clusters)
        self.metrics = SubscriptionMetrics()
        self.table: SubscriptionTable | None = None
        self.runners: dict[str, SubscriptionRunner] = {}
        self._lock = asyncio.Lock()
        self._kafka_admin: AdminClient | None = None
        self._reconciler: asyncio.Task[None] | None = None
        self.forwarder = Forwarder(
            settings.names, self.clusters, ForwarderMetrics(self.metrics.registry)
        )

    def kafka_admin(self) -> AdminClient:
        """An admin client of Perdure's Kafka, made on first use."""
        if self._kafka_admin is None:
            self._kafka_admin = AdminClient(client_settings(self.settings.bootstrap))
        return self._kafka_admin

    async def start(self) -> None:
        await self.core.start()
        s = self.settings
        self.table = await asyncio.to_thread(SubscriptionTable, s.bootstrap, s.names)
        if not await asyncio.to_thread(self.table.ready.wait, 60):
            raise RuntimeError("the subscriptions topic was not read in time")
        self._reconciler = asyncio.create_task(self._reconcile_forever())
        self.forwarder.start()
        log.info(
            "admin on http://%s:%d: cluster %r, %d subscriptions, Kafka clusters %s",
            s.host,
            s.port,
            s.cluster,
            len(self.table.all()),
            sorted(self.clusters.clusters),
        )

    async def stop(self) -> None:
        if self._reconciler is not None:
            self._reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciler
        await asyncio.gather(*(r.stop() for r in self.runners.values()))
        self.runners.clear()
        await asyncio.to_thread(self.forwarder.stop)
        if self.table is not None:
            await asyncio.to_thread(self.table.close)
        await self.core.stop()

    @property
    def ready(self) -> bool:
        return self.table is not None and self.table.ready.is_set() and self.core.ready

    # -- the table and the runners --------------------------------------------------------------

    async def _reconcile_forever(self) -> None:
        while True:
            try:
                await self._declare()
                await self._reconcile()
            except Exception:
                log.exception("reconciling the subscriptions failed; trying again")
            await asyncio.sleep(RECONCILE_INTERVAL_S)

    async def _reconcile(self) -> None:
        """Runs a runner for every subscription in the table, and no other."""
        assert self.table is not None
        async with self._lock:
            wanted = {sub.id: sub for sub in self.table.all()}
            for sub_id in [i for i in self.runners if i not in wanted]:
                await self._stop_runner(sub_id)
            for sub_id, sub in wanted.items():
                if sub_id not in self.runners:
                    try:
                        runner = SubscriptionRunner(
                            sub, self.core, self.clusters, self.settings.names, self.metrics
                        )
                    except UnknownCluster as err:
                        log.error("subscription %s cannot run: %s", sub_id, err)
                        continue
                    runner.start()
                    self.runners[sub_id] = runner

    async def _stop_runner(self, sub_id: str) -> None:
        runner = self.runners.pop(sub_id, None)
        if runner is not None:
            await runner.stop()
            self.metrics.forget(sub_id)
            log.info("subscription %s stopped", sub_id)

    async def _declare(self) -> None:
        """Creates the subscriptions handlers declare in code, deletes those no longer declared."""
        assert self.table is not None
        registry = self.core.registry
        if registry is None or not self.core.ready:
            return
        declared: dict[str, Subscription] = {}
        for service, entry in list(registry.services.items()):
            for handler, spec in entry.get("handlers", {}).items():
                for given in spec.get("subscriptions", []):
                    try:
                        source = subscriptions.parse_source(given["source"])
                        sink = subscriptions.Sink(service, handler)
                        options = subscriptions.check_options(given.get("options", {}))
                    except (InvalidSubscription, KeyError, TypeError) as err:
                        log.error("%s/%s declares a bad subscription: %s", service, handler, err)
                        continue
                    sub_id = subscriptions.subscription_id(source, sink)
                    declared[sub_id] = Subscription(sub_id, source, sink, options, declared=True)
        for sub_id, sub in declared.items():
            if self.table.get(sub_id) != sub:
                await asyncio.to_thread(self.table.put, sub)
                log.info("subscription %s declared by %s", sub_id, sub.sink.uri)
        for sub in self.table.all():
            hosted = sub.sink.service in registry.services
            if sub.declared and hosted and sub.id not in declared:
                async with self._lock:
                    await asyncio.to_thread(self.table.delete, sub.id)
                    await self._stop_runner(sub.id)
                log.info("subscription %s no longer declared by %s: deleted", sub.id, sub.sink.uri)

    # -- the API ----------------------------------------------------------------------------------

    async def create(self, body: Any) -> Subscription:
        """Checks and stores a new subscription.

        Raises:
            IngressError: 400 for what is wrong with it, 409 if it exists, 503 if Kafka is not
                there.
        """
        assert self.table is not None
        if not isinstance(body, dict):
            raise IngressError(400, "the body must be a JSON object with source and sink")
        source_text, sink_text = body.get("source"), body.get("sink")
        if not isinstance(source_text, str) or not isinstance(sink_text, str):
            raise IngressError(400, "source and sink are required strings")
        try:
            source = subscriptions.parse_source(source_text)
            sink = subscriptions.parse_sink(sink_text)
            options = subscriptions.check_options(body.get("options") or {})
        except InvalidSubscription as err:
            raise IngressError(400, str(err)) from None
        try:
            client = self.clusters.settings(source.cluster)
        except UnknownCluster as err:
            raise IngressError(400, str(err)) from None
        self._check_sink(sink)
        await asyncio.to_thread(_check_topic, client, source)
        await asyncio.to_thread(_check_consumer_settings, client, options)
        sub_id = subscriptions.subscription_id(source, sink)
        sub = Subscription(sub_id, source, sink, options)
        async with self._lock:
            if self.table.get(sub_id) is not None:
                raise IngressError(
                    409, f"a subscription from {source.uri} to {sink.uri} exists: {sub_id}"
                )
            await asyncio.to_thread(self.table.put, sub)
        await self._reconcile()
        return sub

    def _check_sink(self, sink: subscriptions.Sink) -> None:
        registry = self.core.registry
        if registry is None or not self.core.ready:
            raise IngressError(503, "the service registry is loading")
        entry = registry.services.get(sink.service)
        if entry is None:
            raise IngressError(400, f"sink {sink.uri}: service {sink.service!r} not found")
        if sink.handler not in entry.get("handlers", {}):
            raise IngressError(
                400, f"sink {sink.uri}: handler {sink.handler!r} not found in {sink.service!r}"
            )

    async def delete(self, sub_id: str) -> None:
        """Deletes a subscription; returns once this process appends nothing more for it.

        Raises:
            IngressError: 404 if there is none, 409 if it is declared in code.
        """
        assert self.table is not None
        async with self._lock:
            sub = self.table.get(sub_id)
            if sub is None:
                raise IngressError(404, f"subscription {sub_id!r} not found")
            if sub.declared:
                raise IngressError(
                    409,
                    f"subscription {sub_id} is declared in code by {sub.sink.uri}: "
                    "remove subscribe= from the handler to delete it",
                )
            await asyncio.to_thread(self.table.delete, sub_id)
            await self._stop_runner(sub_id)

    def describe(self, sub: Subscription) -> dict[str, Any]:
        doc = sub.describe()
        runner = self.runners.get(sub.id)
        doc["status"] = runner.status() if runner is not None else {"state": "not running here"}
        return doc


def _check_topic(client: dict[str, str], source: subscriptions.Source) -> None:
    # The whole list, not the topic's own metadata: asking for one topic can create it on a
    # broker with auto.create.topics.enable.
    try:
        topics = AdminClient(dict(client)).list_topics(timeout=10).topics
    except KafkaException as err:
        raise IngressError(503, f"Kafka cluster {source.cluster!r} does not answer: {err}") from err
    if source.topic not in topics:
        raise IngressError(
            400, f"topic {source.topic!r} does not exist in Kafka cluster {source.cluster!r}"
        )


def _check_consumer_settings(client: dict[str, str], options: dict[str, str]) -> None:
    probe = {k: v for k, v in options.items() if k not in ("ordering", "max_in_flight")}
    probe.pop("dead_letter_topic", None)
    try:
        Consumer({**client, "group.id": "perdure-admin-check", **probe}).close()
    except (KafkaException, ValueError, TypeError) as err:
        raise IngressError(400, f"bad consumer setting in options: {err}") from None


def create_admin_app(settings: AdminSettings | None = None) -> FastAPI:
    """The admin process's ASGI app."""
    settings = settings or AdminSettings.from_env()
    admin = Admin(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await admin.start()
        try:
            yield
        finally:
            await admin.stop()

    app = FastAPI(
        title="Perdure admin",
        description=(
            "Operate the cluster: invocations (list, describe, cancel, kill), services and "
            "their state, subscriptions of Kafka topics to handlers. A web UI over this API "
            "is served at /ui/."
        ),
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.admin = admin
    install_error_handlers(app)
    register_operations(app, Operations(admin.core))
    register_deployments(app, admin.core, settings.bootstrap, settings.names)
    app.add_middleware(
        AccessGuard,
        token=settings.token,
        max_body_bytes=settings.max_body_bytes,
        what="the admin API",
        open_prefixes=(UI_PATH + "/",),
    )
    # Outermost: refused requests (401, 413) are counted too.
    app.add_middleware(AdminMetricsMiddleware, metrics=AdminMetrics(admin.metrics.registry))
    app.mount(UI_PATH, StaticFiles(directory=UI_FILES, html=True), name="ui")

    @app.get("/cluster")
    async def cluster_placement() -> dict[str, Any]:
        """Which worker leads which partitions of the log (the workers' consumer group)."""
        return await asyncio.to_thread(placement, admin.kafka_admin(), settings.names)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(UI_PATH + "/")

    @app.get(UI_PATH, include_in_schema=False)
    async def ui_home() -> RedirectResponse:
        return RedirectResponse(UI_PATH + "/")

    @app.get("/health")
    @app.get("/health/ready")
    async def health() -> JSONResponse:
        """Readiness: Kafka answers, the registry and the subscriptions table are read."""
        why = admin.core.not_ready()
        if why is None and not admin.ready:
            why = "the subscriptions table is loading"
        if why is not None:
            return error_answer(503, f"not ready: {why}")
        return JSONResponse({"status": "ok", "pid": os.getpid()})

    @app.get("/health/live")
    async def live() -> JSONResponse:
        """Liveness: the process answers."""
        return JSONResponse({"status": "live", "pid": os.getpid()})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(admin.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/subscriptions", status_code=201)
    async def create_subscription(request: Request) -> JSONResponse:
        """Subscribes a handler to a Kafka topic (Restate's contract)."""
        try:
            body = await request.json()
        except ValueError:
            raise IngressError(400, "the body is not valid JSON") from None
        sub = await admin.create(body)
        return JSONResponse(admin.describe(sub), status_code=201)

    @app.get("/subscriptions")
    async def list_subscriptions(sink: str | None = None, source: str | None = None) -> Any:
        """Every subscription, optionally those of one sink or one source."""
        assert admin.table is not None
        found = [
            admin.describe(s)
            for s in admin.table.all()
            if (sink is None or s.sink.uri == sink) and (source is None or s.source.uri == source)
        ]
        return {"subscriptions": found}

    @app.get("/subscriptions/{subscription_id}")
    async def get_subscription(subscription_id: str) -> Any:
        """One subscription, with what this process's consumer of it does."""
        assert admin.table is not None
        sub = admin.table.get(subscription_id)
        if sub is None:
            raise IngressError(404, f"subscription {subscription_id!r} not found")
        return admin.describe(sub)

    @app.delete("/subscriptions/{subscription_id}", status_code=202)
    async def delete_subscription(subscription_id: str) -> Response:
        """Deletes a subscription: no invocation starts from it once this answered."""
        await admin.delete(subscription_id)
        return Response(status_code=202)

    return app
