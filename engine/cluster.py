"""Names of a cluster's Kafka topics and groups: one prefix (``--cluster``) for all of them.

Several clusters can share one broker. These names are a contract between workers and ingress
replicas of one cluster; they never change meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

from perdure.engine.replication import Replication


@dataclass(frozen=True, slots=True)
class ClusterNames:
    """The topics and consumer group of the cluster called ``name``."""

    name: str = "perdure"

    @property
    def log_topic(self) -> str:
        """The log: invocations, journal entries, leader announcements (``P`` partitions)."""
        return f"{self.name}.log"

    @property
    def responses_topic(self) -> str:
        """Answers to ingress waiters; each ingress replica reads one partition."""
        return f"{self.name}.responses"

    @property
    def backups_topic(self) -> str:
        """Backups of partition stores: partition ``p`` holds the backups of log partition ``p``."""
        return f"{self.name}.backups"

    @property
    def registry_topic(self) -> str:
        """Compacted: the services workers host, keyed by service name."""
        return f"{self.name}.registry"

    @property
    def subscriptions_topic(self) -> str:
        """Compacted: the subscriptions (topic -> handler), keyed by subscription id."""
        return f"{self.name}.subscriptions"

    @property
    def dead_letter_topic(self) -> str:
        """Where a subscription puts the records it cannot run, unless its options say where."""
        return f"{self.name}.dead-letters"

    def publish_transactional_id(self, partition: int) -> str:
        """The ``transactional.id`` of the producer publishing for log partition ``partition``.

        One per log partition, so the next leader of the partition fences the previous one's
        producer (and aborts its open transaction) before it leads."""
        return f"{self.name}.publish.{partition}"

    @property
    def outbox_topic(self) -> str:
        """Records published to Kafka clusters other than Perdure's own, until forwarded:
        partition ``p`` holds those published by invocations of log partition ``p``."""
        return f"{self.name}.outbox"

    @property
    def forward_positions_topic(self) -> str:
        """Compacted, on each *other* cluster: how far each outbox partition was forwarded
        there, written in the forwarding transaction itself."""
        return f"{self.name}.forward-positions"

    @property
    def forwarder_group(self) -> str:
        """The consumer group of the forwarders (one share of the outbox partitions each)."""
        return f"{self.name}.forwarder"

    def forward_transactional_id(self, partition: int) -> str:
        """The ``transactional.id``, on every other cluster, of the forwarder of outbox
        partition ``partition``: the next owner of the partition fences the previous one."""
        return f"{self.name}.forward.{partition}"

    def subscription_group(self, subscription_id: str) -> str:
        """The consumer group of a subscription: its committed offsets outlive a re-creation."""
        return f"{self.name}.subscription.{subscription_id}"

    @property
    def worker_group(self) -> str:
        """The consumer group of the partition workers."""
        return f"{self.name}.workers"


BLOCKED_NOTE = "blocked"
"""How a blocked partition's committed offset's metadata begins: a worker commits its applied
offsets with each lease renewal (partitions/lease.py), and the admin's ``GET /cluster`` reads
which partitions are blocked, and why, from Kafka."""

MAX_RECORD_BYTES = 16 * 1024 * 1024
"""The largest record Perdure writes: room for the ingress's 10 MiB body limit and the envelope."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic the cluster needs: its name, partition count, replicas and topic configs."""

    name: str
    partitions: int
    config: dict[str, str]
    replication_factor: int = -1
    """-1: the broker's ``default.replication.factor``."""


LOG_SEGMENT_BYTES = 16 * 1024 * 1024
"""Segment size of the log and backups topics: trimmed records leave the disk a segment at a
time, so this bounds what a trimmed partition still holds on the broker's disk."""


def topic_specs(
    names: ClusterNames,
    partitions: int,
    segment_bytes: int = LOG_SEGMENT_BYTES,
    replication: Replication | None = None,
) -> list[TopicSpec]:
    """The cluster's topics.

    Neither the log nor the backups expire by time (``retention.ms=-1``): the leader trims both
    with ``delete_records`` once a newer backup is recorded in the log
    (partitions/storage/backup.py).
    Segments are small (``segment_bytes``) so that what is trimmed leaves the disk soon: the
    broker deletes whole segments only. Responses are transient; the registry is compacted by
    service name, the subscriptions by id. The outbox keeps records for other clusters until
    forwarded, for :data:`OUTBOX_RETENTION_MS`. Every topic gets ``replication``'s replicas
    and configs (none given: the broker's defaults).
    """
    big = str(MAX_RECORD_BYTES)
    kept = {"retention.ms": "-1", "max.message.bytes": big, "segment.bytes": str(segment_bytes)}
    specs = [
        TopicSpec(names.log_topic, partitions, kept),
        TopicSpec(names.backups_topic, partitions, kept),
        TopicSpec(
            names.responses_topic,
            partitions,
            {"retention.ms": "3600000", "max.message.bytes": big},
        ),
        TopicSpec(names.registry_topic, 1, {"cleanup.policy": "compact"}),
        TopicSpec(names.subscriptions_topic, 1, {"cleanup.policy": "compact"}),
        TopicSpec(
            names.outbox_topic,
            partitions,
            {"retention.ms": str(OUTBOX_RETENTION_MS), "max.message.bytes": big},
        ),
    ]
    if replication is None:
        return specs
    extra = replication.topic_config()
    return [
        TopicSpec(t.name, t.partitions, {**t.config, **extra}, replication.factor) for t in specs
    ]


OUTBOX_RETENTION_MS = 7 * 24 * 3600 * 1000
"""How long a record for another cluster waits in the outbox: a forwarder down for longer
loses what it did not forward."""
