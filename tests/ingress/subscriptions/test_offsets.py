"""The commit position of a subscription's partition: below every unfinished record."""

from __future__ import annotations

from perdure.ingress.subscriptions.offsets import OffsetTracker

TP = ("orders", 0)


def test_the_commit_waits_for_the_first_unfinished_record() -> None:
    t = OffsetTracker()
    gens = [t.read(TP, o) for o in (10, 11, 12)]
    assert t.to_commit() == {TP: 10} and t.in_flight() == 3
    t.finished(TP, 11, gens[1])
    assert t.position(TP) == 10
    t.finished(TP, 10, gens[0])
    assert t.position(TP) == 12 and t.in_flight() == 1
    t.committed({TP: 12})
    assert t.to_commit() == {}
    t.finished(TP, 12, gens[2])
    assert t.to_commit() == {TP: 13}


def test_a_partition_taken_away_ignores_what_finishes_later() -> None:
    t = OffsetTracker()
    old = t.read(TP, 5)
    t.forget([TP])
    new = t.read(TP, 5)  # read again by this process after it came back
    t.finished(TP, 5, old)
    assert t.position(TP) == 5
    t.finished(TP, 5, new)
    assert t.position(TP) == 6
