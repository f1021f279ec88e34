"""IngressSettings and AdminSettings: configuration from flags or ``PERDURE_*`` variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from perdure.engine.cluster import ClusterNames
from perdure.engine.settings import read_settings


@dataclass(frozen=True)
class IngressSettings:
    """How an ingress replica runs; every field reads ``PERDURE_<FIELD>`` when not given."""

    bootstrap: str = "127.0.0.1:9092"
    host: str = "127.0.0.1"
    port: int = 8080
    cluster: str = "perdure"
    partitions: int = 8
    max_body_bytes: int = 10 * 1024 * 1024
    reattach_interval_s: float = 3.0
    """The first pause before a waiting request asks its partition again (a lost answer)."""
    reattach_max_interval_s: float = 60.0
    """The pause doubles after each ask, up to this: a day-long wait writes ~1,500 records."""
    produce_timeout_s: float = 15.0
    access_log: bool = False
    """Log every request (method, path, status) on the ingress's output."""
    segment_bytes: int = 16 * 1024 * 1024
    """Segment size of the log and backups topics (when this replica creates them)."""
    replication_factor: int = 0
    """Replicas of each partition of the cluster's topics, when this process creates them
    (``PERDURE_REPLICATION_FACTOR``); 0: three, or as many as there are brokers if fewer."""
    min_insync_replicas: int = 0
    """Replicas that hold a record before it counts as written (``min.insync.replicas``,
    ``PERDURE_MIN_INSYNC_REPLICAS``); 0: two with three replicas or more, else one."""
    keep_alive_s: int = 65
    """How long an idle keep-alive connection stays open. Longer than the clients' own idle
    expiry (httpx: 5 s, load balancers: 60 s), so the client closes an idle connection first:
    when the server does at the same moment, the request the client sends on it is lost to a
    reset (uvicorn's default is 5 s, the same as httpx's)."""
    event_loop: str = "auto"
    """``uvloop`` (what ``auto`` picks where it is installed) or ``asyncio``: passed to
    uvicorn, which also parses HTTP with ``httptools`` where it is installed."""
    call_timeout_s: float = 0.0
    """How long a call waits for its result before answering 202 with the invocation id (to
    attach to later); 0 waits as long as the invocation runs."""
    ingress_token: str = ""
    """A bearer token every request must carry (``PERDURE_INGRESS_TOKEN``); empty: none."""
    shutdown_delay_s: float = 2.0
    """On SIGTERM, how long the replica goes on accepting calls while its readiness
    (``/health``) already answers 503 (``PERDURE_SHUTDOWN_DELAY_S``): a load balancer that
    checks more often than this stops sending it calls before it stops listening, so no call
    meets a closed port or a connection reset. A second SIGTERM stops it at once."""
    shutdown_grace_s: int = 30
    """On SIGTERM the replica stops accepting connections at once (a load balancer moves new
    calls to the other replicas) and answers the calls it holds for up to this long
    (``PERDURE_SHUTDOWN_GRACE_S``): long enough for a worker's hand-over (its drain, then a
    rebalance) to happen under a waiting call."""

    @classmethod
    def from_env(cls, **given: Any) -> IngressSettings:
        """Settings from explicit values, then ``PERDURE_*`` variables, then defaults."""
        return read_settings(cls, given)

    @property
    def names(self) -> ClusterNames:
        """The cluster's topic names."""
        return ClusterNames(self.cluster)


@dataclass(frozen=True)
class AdminSettings:
    """How an admin process runs; every field reads ``PERDURE_ADMIN_<FIELD>`` when not given,
    except those shared with the other processes (``PERDURE_BOOTSTRAP``, ``PERDURE_CLUSTER``,
    ``PERDURE_PARTITIONS``, ``PERDURE_EVENT_LOOP``), which read their usual names."""

    bootstrap: str = "127.0.0.1:9092"
    host: str = "127.0.0.1"
    port: int = 9070
    cluster: str = "perdure"
    partitions: int = 8
    event_loop: str = "auto"
    kafka_clusters: str = ""
    """Kafka clusters other than ``default`` by name, for subscriptions: JSON, or ``@file``
    (``PERDURE_KAFKA_CLUSTERS``; see engine/kafka_clusters.py)."""
    token: str = ""
    """A bearer token every request but the health probes must carry
    (``PERDURE_ADMIN_TOKEN``); empty: none."""
    max_body_bytes: int = 1024 * 1024
    """Larger request bodies get a 413 (``PERDURE_ADMIN_MAX_BODY_BYTES``)."""

    @classmethod
    def from_env(cls, **given: Any) -> AdminSettings:
        """Settings from explicit values, then variables, then defaults."""
        shared = read_settings(_Shared, {k: given.get(k) for k in _SHARED})
        own = read_settings(cls, given, prefix="PERDURE_ADMIN_")
        values = {
            k: getattr(shared, k)
            for k in _SHARED
            if given.get(k) is None and f"PERDURE_ADMIN_{k.upper()}" not in os.environ
        }
        if given.get("kafka_clusters") is None and "PERDURE_KAFKA_CLUSTERS" in os.environ:
            values["kafka_clusters"] = os.environ["PERDURE_KAFKA_CLUSTERS"]
        return replace(own, **values)

    @property
    def names(self) -> ClusterNames:
        """The cluster's topic names."""
        return ClusterNames(self.cluster)

    def ingress(self) -> IngressSettings:
        """The settings of the ingress core the admin process runs on (log, answers)."""
        return IngressSettings.from_env(
            bootstrap=self.bootstrap,
            cluster=self.cluster,
            partitions=self.partitions,
            event_loop=self.event_loop,
        )


@dataclass(frozen=True)
class _Shared:
    bootstrap: str = AdminSettings.bootstrap
    cluster: str = AdminSettings.cluster
    partitions: int = AdminSettings.partitions
    event_loop: str = AdminSettings.event_loop


_SHARED = ("bootstrap", "cluster", "partitions", "event_loop")
