"""How many copies of the cluster's topics Kafka keeps, and whether that survives a broker failure.

Perdure acknowledges a step once its record is in the log with ``acks=all`` (invariant 4): the
record is then on every replica in sync, and at least ``min.insync.replicas`` of them. Only
``min.insync.replicas >= 2`` keeps an acknowledged step through the loss of one broker's disk;
``replication factor > min.insync.replicas`` keeps the log writable while one broker is down.
The defaults follow from the broker count: 3 replicas, 2 in sync on three or more brokers; on
fewer, as many replicas as brokers (one broker: 1 and 1, which :func:`risks` warns about).
"""

from __future__ import annotations

from dataclasses import dataclass


class ReplicationError(ValueError):
    """The replication asked for cannot be had on this cluster."""


@dataclass(frozen=True, slots=True)
class Replication:
    """Replicas per partition of the cluster's topics, and how many must hold each record."""

    factor: int
    min_insync: int

    def topic_config(self) -> dict[str, str]:
        """Topic configs that go with it: durable writes, and no unclean leader ever."""
        return {
            "min.insync.replicas": str(self.min_insync),
            "unclean.leader.election.enable": "false",
        }


def choose(brokers: int, factor: int = 0, min_insync: int = 0) -> Replication:
    """The replication of topics created on a cluster of ``brokers`` brokers.

    Args:
        brokers: brokers in the cluster now.
        factor: replicas per partition; 0 picks ``min(3, brokers)``.
        min_insync: replicas that must hold a record before it is acknowledged; 0 picks 2
            with three replicas or more, else 1.

    Raises:
        ReplicationError: more replicas than brokers, or more in sync than replicas.
    """
    if brokers < 1:
        raise ReplicationError("the cluster lists no broker")
    factor = factor or min(3, brokers)
    min_insync = min_insync or (2 if factor >= 3 else 1)
    if factor > brokers:
        raise ReplicationError(
            f"replication factor {factor} needs {factor} brokers; the cluster has {brokers}"
            " (PERDURE_REPLICATION_FACTOR)"
        )
    if min_insync > factor:
        raise ReplicationError(
            f"min.insync.replicas {min_insync} is more than the {factor} replicas:"
            " no write could ever succeed (PERDURE_MIN_INSYNC_REPLICAS)"
        )
    return Replication(factor, min_insync)


def risks(topic: str, factor: int, min_insync: int, unclean_election: bool) -> list[str]:
    """What a topic's replication cannot survive, in words (empty: one broker failure is fine).

    Args:
        topic: the topic's name, for the messages.
        factor: its replicas per partition (the fewest of any partition).
        min_insync: its ``min.insync.replicas``.
        unclean_election: its ``unclean.leader.election.enable``.
    """
    found = []
    if factor < 2 or min_insync < 2:
        found.append(
            f"{topic}: replication factor {factor}, min.insync.replicas {min_insync}: an"
            " acknowledged step is on one broker only, and lost with that broker's disk"
            " (use 3 and 2 on a cluster of three brokers or more)"
        )
    if factor > 1 and min_insync >= factor:
        found.append(
            f"{topic}: min.insync.replicas {min_insync} of {factor} replicas: one broker down"
            " stops every write to the log"
        )
    if unclean_election:
        found.append(
            f"{topic}: unclean.leader.election.enable is true: a replica that lags may become"
            " leader and drop acknowledged records"
        )
    return found
