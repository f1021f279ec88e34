"""Names of a cluster's Kafka topics and groups: one prefix (``--cluster``) for all of them.

Several clusters can share one broker. These names are a contract between workers and ingress
replicas of one cluster; they never change meaning.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    def registry_topic(self) -> str:
        """Compacted: the services workers host, keyed by service name."""
        return f"{self.name}.registry"

    @property
    def worker_group(self) -> str:
        """The consumer group of the partition workers."""
        return f"{self.name}.workers"


MAX_RECORD_BYTES = 16 * 1024 * 1024
"""The largest record Perdure writes: room for the ingress's 10 MiB body limit and the envelope."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic the cluster needs: its name, partition count and topic configs."""

    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(names: ClusterNames, partitions: int) -> list[TopicSpec]:
    """The cluster's topics.

    The log keeps every record (``retention.ms=-1``): it is the truth that partition stores are
    rebuilt from. Responses are transient; the registry is compacted by service name.
    """
    big = str(MAX_RECORD_BYTES)
    return [
        TopicSpec(names.log_topic, partitions, {"retention.ms": "-1", "max.message.bytes": big}),
        TopicSpec(
            names.responses_topic,
            partitions,
            {"retention.ms": "3600000", "max.message.bytes": big},
        ),
        TopicSpec(names.registry_topic, 1, {"cleanup.policy": "compact"}),
    ]


def producer_settings(bootstrap: str) -> dict[str, object]:
    """librdkafka settings of every Perdure producer: idempotent, acks=all, low latency."""
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 0,
        "message.max.bytes": MAX_RECORD_BYTES,
        "message.timeout.ms": 15000,
    }
