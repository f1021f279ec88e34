"""Creates the cluster's topics on first start and checks them on every start."""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from perdure.engine import replication
from perdure.engine.cluster import LOG_SEGMENT_BYTES, ClusterNames, topic_specs
from perdure.partitions.errors import TopicSetupError
from perdure.process.client_logs import CLIENT_LOGGER, ConnectionTrouble
from perdure.process.kafka_settings import client_settings

log = logging.getLogger("perdure.topics")


def ensure_topics(
    bootstrap: str,
    names: ClusterNames,
    partitions: int,
    timeout: float = 30,
    segment_bytes: int = LOG_SEGMENT_BYTES,
    replication_factor: int = 0,
    min_insync_replicas: int = 0,
) -> int:
    """Creates missing topics; returns the log's partition count (fixed when it was created).

    New topics get ``replication_factor`` replicas, ``min_insync_replicas`` of them in sync
    (0: what :func:`engine.replication.choose` picks for the brokers there are). Whoever
    created the log, its replication is checked, and what it cannot survive is logged as a
    warning (:func:`check_replication`).
    """
    trouble = ConnectionTrouble()
    admin = AdminClient(client_settings(bootstrap, logger=CLIENT_LOGGER, error_cb=trouble))
    try:
        cluster = admin.list_topics(timeout=timeout)
    except KafkaException as err:
        raise TopicSetupError(
            f"cannot reach Kafka at {bootstrap}: {trouble.explain(err, admin)}"
        ) from err
    existing = cluster.topics
    try:
        chosen = replication.choose(len(cluster.brokers), replication_factor, min_insync_replicas)
    except replication.ReplicationError as err:
        raise TopicSetupError(str(err)) from None
    specs = [
        NewTopic(
            t.name,
            num_partitions=t.partitions,
            replication_factor=t.replication_factor,
            config=t.config,
        )
        for t in topic_specs(names, partitions, segment_bytes, chosen)
    ]
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
    for warning in check_replication(admin, names.log_topic, timeout):
        log.warning("%s", warning)
    return actual


def check_replication(admin: AdminClient, topic: str, timeout: float = 30) -> list[str]:
    """What ``topic``'s replication cannot survive (engine/replication.py), as found on the
    cluster: the fewest replicas of any partition and the topic's effective configs."""
    md = admin.list_topics(topic, timeout=timeout).topics.get(topic)
    if md is None or md.error is not None or not md.partitions:
        return [f"{topic}: cannot read its partitions to check its replication"]
    factor = min(len(p.replicas) for p in md.partitions.values())
    resource = ConfigResource(ResourceType.TOPIC, topic)
    try:
        configs = admin.describe_configs([resource])[resource].result(timeout)
    except KafkaException as err:
        return [f"{topic}: cannot read its configs to check its replication: {err}"]
    min_insync = int(configs["min.insync.replicas"].value or 1)
    unclean = (configs["unclean.leader.election.enable"].value or "false") == "true"
    return replication.risks(topic, factor, min_insync, unclean)
