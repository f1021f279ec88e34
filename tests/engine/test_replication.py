"""engine/replication.py: which replication new topics get, and what a topic's cannot survive."""

from __future__ import annotations

import pytest

from perdure.engine.replication import Replication, ReplicationError, choose, risks

CHOICES = [
    # brokers, factor, min_insync asked -> chosen
    (1, 0, 0, Replication(1, 1)),
    (2, 0, 0, Replication(2, 1)),
    (3, 0, 0, Replication(3, 2)),
    (5, 0, 0, Replication(3, 2)),
    (5, 5, 0, Replication(5, 2)),
    (3, 3, 3, Replication(3, 3)),
    (3, 2, 2, Replication(2, 2)),
]


@pytest.mark.parametrize(("brokers", "factor", "min_insync", "want"), CHOICES)
def test_choose(brokers: int, factor: int, min_insync: int, want: Replication) -> None:
    assert choose(brokers, factor, min_insync) == want


@pytest.mark.parametrize(
    ("brokers", "factor", "min_insync", "says"),
    [
        (1, 3, 0, "needs 3 brokers; the cluster has 1"),
        (3, 2, 3, "more than the 2 replicas"),
        (0, 0, 0, "no broker"),
    ],
)
def test_choose_refuses(brokers: int, factor: int, min_insync: int, says: str) -> None:
    with pytest.raises(ReplicationError, match=says):
        choose(brokers, factor, min_insync)


RISKS = [
    # factor, min_insync, unclean -> the words each warning must contain (none: safe)
    (3, 2, False, []),
    (5, 3, False, []),
    (1, 1, False, ["lost with that broker's disk"]),
    (3, 1, False, ["lost with that broker's disk"]),
    (2, 2, False, ["stops every write"]),
    (3, 3, False, ["stops every write"]),
    (3, 2, True, ["unclean.leader.election.enable"]),
    (1, 1, True, ["lost with that broker's disk", "unclean.leader.election.enable"]),
]


@pytest.mark.parametrize(("factor", "min_insync", "unclean", "want"), RISKS)
def test_risks(factor: int, min_insync: int, unclean: bool, want: list[str]) -> None:
    found = risks("c.log", factor, min_insync, unclean)
    assert len(found) == len(want)
    for text, words in zip(found, want, strict=True):
        assert text.startswith("c.log: ") and words in text


def test_topic_config_never_allows_unclean_leaders() -> None:
    assert Replication(3, 2).topic_config() == {
        "min.insync.replicas": "2",
        "unclean.leader.election.enable": "false",
    }
