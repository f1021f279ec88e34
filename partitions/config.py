"""WorkerSettings: a worker's configuration, from flags or ``PERDURE_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from perdure.engine.cluster import ClusterNames
from perdure.process.settings import PerdureSettings


class WorkerSettings(PerdureSettings):
    """How a partition worker runs.

    Every field reads ``PERDURE_<FIELD>`` (e.g. ``PERDURE_BOOTSTRAP``) when not given.
    """

    bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap address."""
    state_dir: Path = Path(".perdure/state")
    """Where the partitions' RocksDB stores live (one folder each)."""
    cluster: str = "perdure"
    """The prefix of every topic and group of the cluster; clusters can share a broker."""
    partitions: int = 8
    """The log's partition count, used when the cluster's topics are created."""
    session_timeout_ms: int = 6000
    """The group's session timeout: how long a silent worker keeps its partitions."""
    retention_s: float = 24 * 3600.0
    """How long a completed invocation (its outcome, journal, idempotency key) is kept."""
    purge_interval_s: float = 60.0
    """How often a leader sweeps completed invocations past their retention."""
    redelivery_interval_s: float = 5.0
    """How often a leader redelivers its outbox's unacknowledged records."""
    suspend_after_s: float = 1.0
    """How long a handler waiting on a call, timer or awakeable holds its task before it
    suspends."""
    ack_timeout_s: float = 30.0
    """How long a step waits for the log's acknowledgement before its attempt restarts."""
    remote_streams: bool = True
    """Run Restate SDK endpoints that offer it over one bidirectional HTTP/2 stream per attempt
    (``PERDURE_REMOTE_STREAMS``); false: one request per step, the journal replayed each time."""
    connect_timeout_s: float = 30.0
    """How long a starting worker waits for Kafka before it exits with "cannot reach Kafka"
    (``PERDURE_CONNECT_TIMEOUT_S``): long enough for a broker that starts beside it."""
    produce_timeout_s: float = 15.0
    """How long an append to Kafka may take before it counts as failed."""
    drain_timeout_s: float = 10.0
    """On SIGTERM, how long handlers in a step get to finish it before the worker hands its
    partitions over (``PERDURE_DRAIN_TIMEOUT_S``; Invoker.drain). 0: hand over at once."""
    kafka_clusters: str = ""
    """Kafka clusters other than ``default`` that handlers publish to, by name: JSON, or
    ``@file`` (``PERDURE_KAFKA_CLUSTERS``, the same as the admin's;
    perdure/process/kafka_clusters.py)."""
    metrics_port: int = 0
    """The port of ``/metrics`` and ``/health/ready``; 0: none."""
    backup_min_records: int = 1000
    """Records since the last backup before a leader backs its store up again (but after a
    quiet spell); 0 turns backups off (partitions/storage/backup_policy.py)."""
    backup_replay_s: float = 0.25
    """A backup is due once replaying the records since the last one would take this long
    (the seconds the partition spent applying them), or as long as the last backup took to
    write if that is longer: a new owner's restore stays near load + this, whatever the
    history. 0: a backup every ``backup_min_records`` records."""
    backup_quiet_s: float = 5.0
    """A partition whose log has not grown by 100 records or more for this long backs up what
    came since."""
    backup_interval_s: float = 300.0
    """A backup is also taken this long after the last one if any record came since."""
    backup_chunk_bytes: int = 1 << 20
    """Store bytes per chunk record of a backup (before compression)."""
    trim_margin_records: int = 1000
    """Log records kept below a recorded backup when the log is trimmed; -1: never trim."""
    standby_replicas: int = 0
    """Warm copies of each partition kept by workers that do not lead it (Kafka Streams'
    standby replicas): a failover to one of them replays only the last few records."""
    store_cache_bytes: int = 24 * 1024 * 1024
    """RocksDB's memory for every store of the worker together: one block cache, the
    memtables charged to it (``PERDURE_STORE_CACHE_BYTES``)."""
    store_memtable_bytes: int = 16 * 1024 * 1024
    """The memtables' share of it, capped across stores (``PERDURE_STORE_MEMTABLE_BYTES``)."""
    malloc_arenas: int = 2
    """glibc malloc arenas of the worker process, shared by its threads (0: glibc's default,
    eight per core; partitions/storage/heap.py says why few)."""
    segment_bytes: int = 16 * 1024 * 1024
    """Segment size of the log and backups topics (when this worker creates them)."""
    replication_factor: int = 0
    """Replicas of each partition of the cluster's topics, when this process creates them
    (``PERDURE_REPLICATION_FACTOR``); 0: three, or as many as there are brokers if fewer."""
    min_insync_replicas: int = 0
    """Replicas that hold a record before it counts as written (``min.insync.replicas``,
    ``PERDURE_MIN_INSYNC_REPLICAS``); 0: two with three replicas or more, else one."""
    event_loop: str = "auto"
    """``uvloop`` (what ``auto`` picks where it is installed) or ``asyncio``, the standard
    loop: handlers run on it, and uvloop's scheduling costs a fraction of asyncio's."""
    worker_name: str = Field(default_factory=lambda: f"worker-{os.getpid()}")
    """The worker's name in logs and leader ids (default ``worker-<pid>``)."""
    worker_processes: int = Field(default=0, ge=0)
    """Processes of ``perdure worker`` (``--processes``): each a member of the group leading
    its share of the partitions, so a worker uses every core; one metrics endpoint and one log
    (perdure/pool/supervisor.py). 0: one per core; 1: a single process."""

    @property
    def names(self) -> ClusterNames:
        """The cluster's topic and group names."""
        return ClusterNames(self.cluster)
