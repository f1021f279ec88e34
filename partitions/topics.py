"""Creates the cluster's topics on first start and checks them on every start."""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from engine.client_logs import CLIENT_LOGGER, ConnectionTrouble
from engine.cluster import LOG_SEGMENT_BYTES, ClusterNames, topic_specs
from engine.kafka_settings import client_settings
from partitions.errors import TopicSetupError

log = logging.getLogger("perdure.topics")


def ensure_topics(
    bootstrap: str,
    names: ClusterNames,
    partitions: int,
    timeout: float = 30,
    segment_bytes: int = LOG_SEGMENT_BYTES,
) -> int:
    """Creates missing topics; returns the log's partition count (fixed when it was created)."""
    trouble = ConnectionTrouble()
    admin = AdminClient(client_settings(bootstrap, logger=CLIENT_LOGGER, error_cb=trouble))
    specs = [
        NewTopic(t.name, num_partitions=t.partitions, replication_factor=-1, config=t.config)
        for t in topic_specs(names, partitions, segment_bytes)
    ]
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as err:
        raise TopicSetupError(
            f"cannot reach Kafka at {bootstrap}: {trouble.explain(err, admin)}"
        ) from err
    missing = [spec for spec in specs if spec.topic not in existing]
    if missing:
        for topic, future in admin.create_topics(missing, request_timeout=timeout).items():
            try:
                future.result(timeout=timeout)
                log.info("created topic %s", topic)
            except KafkaException as err:
                if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TopicSetupError(f"cannot create topic {topic}: {err}") from err
    # A topic just created (here or by another process) may show up before its partitions do.
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(names.log_topic, timeout=timeout).topics.get(names.log_topic)
        actual = 0 if md is None or md.error is not None else len(md.partitions)
        if actual:
            break
        if time.monotonic() > deadline:
            raise TopicSetupError(f"topic {names.log_topic} has no partitions after {timeout}s")
        time.sleep(0.2)
    if actual != partitions:
        log.warning(
            "%s has %d partitions (fixed at creation); --partitions %d is ignored",
            names.log_topic,
            actual,
            partitions,
        )
    return actual
