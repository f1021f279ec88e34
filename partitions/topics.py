"""Creates the cluster's topics on first start and checks them on every start."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from engine.cluster import ClusterNames, topic_specs
from partitions.errors import TopicSetupError

log = logging.getLogger("perdure.topics")


def ensure_topics(bootstrap: str, names: ClusterNames, partitions: int, timeout: float = 30) -> int:
    """Creates missing topics; returns the log's partition count (fixed when it was created)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    specs = [
        NewTopic(t.name, num_partitions=t.partitions, replication_factor=-1, config=t.config)
        for t in topic_specs(names, partitions)
    ]
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as err:
        raise TopicSetupError(f"cannot reach Kafka at {bootstrap}: {err}") from err
    missing = [spec for spec in specs if spec.topic not in existing]
    if missing:
        for topic, future in admin.create_topics(missing, request_timeout=timeout).items():
            try:
                future.result(timeout=timeout)
                log.info("created topic %s", topic)
            except KafkaException as err:
                if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TopicSetupError(f"cannot create topic {topic}: {err}") from err
    md = admin.list_topics(names.log_topic, timeout=timeout).topics[names.log_topic]
    actual = len(md.partitions)
    if actual == 0:
        raise TopicSetupError(f"topic {names.log_topic} has no partitions")
    if actual != partitions:
        log.warning(
            "%s has %d partitions (fixed at creation); --partitions %d is ignored",
            names.log_topic,
            actual,
            partitions,
        )
    return actual
