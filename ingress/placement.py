"""Which worker runs which partitions of the log: the workers' consumer group, as Kafka sees it.

A worker leads the partitions the group assigns it (it claims each in the log as soon as it
has replayed it), so the group's assignment is the placement an operator balances and a
capacity plan counts. Served by the admin as ``GET /cluster``, and ``perdure cluster``.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from perdure.engine.cluster import BLOCKED_NOTE, ClusterNames
from perdure.ingress.errors import IngressError


def placement(admin: AdminClient, names: ClusterNames, timeout_s: float = 10) -> dict[str, Any]:
    """The partitions of the log per worker, those no worker has, and whether it is balanced.

    A worker is named by its ``client.id``: ``--worker-name`` (``PERDURE_WORKER_NAME``, else
    ``worker-<pid>``) and a suffix that is new on every start.

    Raises:
        IngressError: 503 when Kafka does not answer.
    """
    try:
        md = admin.list_topics(names.log_topic, timeout=timeout_s).topics.get(names.log_topic)
        group = admin.describe_consumer_groups([names.worker_group], request_timeout=timeout_s)[
            names.worker_group
        ].result(timeout_s)
    except KafkaException as err:
        raise IngressError(503, f"Kafka did not describe the workers' group: {err}") from None
    partitions = sorted(md.partitions) if md is not None and md.error is None else []
    workers = []
    assigned: set[int] = set()
    for member in group.members:
        tps = member.assignment.topic_partitions if member.assignment else []
        mine = sorted(tp.partition for tp in tps if tp.topic == names.log_topic)
        assigned.update(mine)
        workers.append(
            {
                "worker": member.client_id,
                "member_id": member.member_id,
                "host": member.host,
                "partitions": mine,
            }
        )
    workers.sort(key=lambda w: (w["worker"], w["member_id"]))
    blocked = _blocked(admin, names, partitions, timeout_s)
    counts = [len(w["partitions"]) for w in workers]
    return {
        "group": names.worker_group,
        "state": str(getattr(group.state, "name", group.state)).lower(),
        "assignor": group.partition_assignor,
        "partitions": len(partitions),
        "workers": workers,
        "unassigned": [p for p in partitions if p not in assigned],
        "balanced": bool(workers) and max(counts) - min(counts) <= 1,
        "blocked": blocked,
    }


def _blocked(
    admin: AdminClient, names: ClusterNames, partitions: list[int], timeout_s: float
) -> list[dict[str, Any]]:
    """The partitions stopped at a record their worker cannot read, with why.

    A worker commits each partition's applied offset with every renewal of its lease
    (partitions/lease.py), and a blocked partition's commit says why in its metadata.
    """
    if not partitions:
        return []
    wanted = [TopicPartition(names.log_topic, p) for p in partitions]
    request = [ConsumerGroupTopicPartitions(names.worker_group, wanted)]
    try:
        result = admin.list_consumer_group_offsets(request, request_timeout=timeout_s)
        committed = result[names.worker_group].result(timeout_s).topic_partitions or []
    except KafkaException as err:
        raise IngressError(503, f"Kafka did not list the workers' offsets: {err}") from None
    return [
        {"partition": tp.partition, "applied_until": tp.offset, "why": tp.metadata}
        for tp in committed
        if (tp.metadata or "").startswith(BLOCKED_NOTE)
    ]
