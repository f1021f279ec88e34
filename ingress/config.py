"""IngressSettings and AdminSettings: configuration from flags or ``PERDURE_*`` variables."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from perdure.engine.cluster import ClusterNames
from perdure.process.settings import PerdureSettings


class IngressSettings(PerdureSettings):
    """How an ingress replica runs; every field reads ``PERDURE_<FIELD>`` when not given."""

    bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap address."""
    host: str = "127.0.0.1"
    """The interface the ingress listens on."""
    port: int = 8080
    """The ingress's HTTP port."""
    cluster: str = "perdure"
    """The prefix of every topic and group of the cluster."""
    partitions: int = 8
    """The log's partition count, used when the cluster's topics are created."""
    max_body_bytes: int = 10 * 1024 * 1024
    """Larger request bodies get a 413."""
    reattach_interval_s: float = 3.0
    """The first pause before a waiting request asks its partition again (a lost answer)."""
    reattach_max_interval_s: float = 60.0
    """The pause doubles after each ask, up to this: a day-long wait writes ~1,500 records."""
    produce_timeout_s: float = 15.0
    """How long an append to Kafka may take before the call fails with a 503."""
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

    @property
    def names(self) -> ClusterNames:
        """The cluster's topic names."""
        return ClusterNames(self.cluster)


def _shared(name: str) -> AliasChoices:
    """An admin setting read from ``PERDURE_ADMIN_<NAME>``, else the shared ``PERDURE_<NAME>``."""
    return AliasChoices(f"PERDURE_ADMIN_{name.upper()}", f"PERDURE_{name.upper()}", name)


class AdminSettings(PerdureSettings):
    """How an admin process runs; every field reads ``PERDURE_ADMIN_<FIELD>`` when not given,
    except those shared with the other processes (``PERDURE_BOOTSTRAP``, ``PERDURE_CLUSTER``,
    ``PERDURE_PARTITIONS``, ``PERDURE_EVENT_LOOP``, ``PERDURE_KAFKA_CLUSTERS``), which read
    their usual names unless their ``PERDURE_ADMIN_`` one is set."""

    model_config = SettingsConfigDict(env_prefix="PERDURE_ADMIN_")

    bootstrap: str = Field("127.0.0.1:9092", validation_alias=_shared("bootstrap"))
    """Kafka bootstrap address."""
    host: str = "127.0.0.1"
    """The interface the admin API listens on."""
    port: int = 9070
    """The admin API's port."""
    cluster: str = Field("perdure", validation_alias=_shared("cluster"))
    """The prefix of the cluster's topics and groups."""
    partitions: int = Field(8, validation_alias=_shared("partitions"))
    """Log partitions, used when the admin creates the topics."""
    event_loop: str = Field("auto", validation_alias=_shared("event_loop"))
    """``uvloop`` or ``asyncio`` (``auto``: uvloop where installed)."""
    kafka_clusters: str = Field("", validation_alias=_shared("kafka_clusters"))
    """Kafka clusters other than ``default`` by name, for subscriptions: JSON, or ``@file``
    (``PERDURE_KAFKA_CLUSTERS``; see perdure/process/kafka_clusters.py)."""
    token: str = ""
    """A bearer token every request but the health probes must carry
    (``PERDURE_ADMIN_TOKEN``); empty: none."""
    max_body_bytes: int = 1024 * 1024
    """Larger request bodies get a 413 (``PERDURE_ADMIN_MAX_BODY_BYTES``)."""

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
