"""Which worker keeps standby copies of which partitions: a pure function of the group."""

from __future__ import annotations

import pytest

from perdure.partitions.storage.standby import plan

OWNERS = {0: "m1", 1: "m1", 2: "m2", 3: "m3"}
MEMBERS = ["m3", "m1", "m2"]


@pytest.mark.parametrize(
    ("me", "replicas", "copies"),
    [
        ("m2", 1, {0, 1}),  # m2 follows m1 in the sorted ring
        ("m3", 1, {2}),
        ("m1", 1, {3}),  # the ring wraps around
        ("m1", 2, {2, 3}),
        ("m2", 5, {0, 1, 3}),  # never more copies than other members, never its own
        ("m2", 0, set()),
        ("m9", 1, set()),  # not (yet) a member
    ],
)
def test_plan(me: str, replicas: int, copies: set[int]) -> None:
    assert plan(OWNERS, MEMBERS, me, replicas) == copies


def test_every_partition_gets_its_copies_once_each() -> None:
    for replicas in (1, 2):
        held = [p for m in MEMBERS for p in plan(OWNERS, MEMBERS, m, replicas)]
        assert sorted(held) == sorted(list(OWNERS) * replicas)
