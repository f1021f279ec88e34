"""When a leader backs up: the suffix a restore replays is bounded in time (measured apply
seconds, not records), quiet spells back up, and neither a handful of cheap records nor an idle
partition starts one."""

from __future__ import annotations

import pytest

from perdure.partitions.storage.backup_policy import (
    QUIET_MIN_RECORDS,
    QUIET_MIN_REPLAY_S,
    BackupPolicy,
)

POLICY = BackupPolicy(min_records=1000, replay_s=0.25, quiet_s=5.0, interval_s=300.0)


@pytest.mark.parametrize(
    ("since", "pending_s", "last_backup_s", "idle_s", "since_backup_s", "want"),
    [
        (0, 0.0, 0.0, 100.0, 1000.0, None),  # nothing came since
        (1, 0.0, 0.0, 100.0, 1000.0, None),  # only its own BackupTaken: an idle partition rests
        (QUIET_MIN_RECORDS - 1, 0.01, 0.0, 100.0, 1000.0, None),  # replays in milliseconds
        (QUIET_MIN_RECORDS, 0.01, 0.0, 5.0, 0.0, "quiet"),
        (20, QUIET_MIN_REPLAY_S, 0.0, 5.0, 0.0, "quiet"),  # few records, slow ones (a purge)
        (QUIET_MIN_RECORDS, 0.01, 0.0, 4.9, 300.0, "interval"),
        (999, 10.0, 0.0, 0.0, 10.0, None),  # under the floor, busy
        (5_000, 0.24, 0.0, 0.0, 10.0, None),  # replays in under 0.25 s
        (1_000, 0.25, 0.0, 0.0, 10.0, "replay budget"),
        (30_000, 2.9, 3.0, 0.0, 10.0, None),  # a big store: its backup took 3 s, so 3 s of replay
        (30_000, 3.0, 3.0, 0.0, 10.0, "replay budget"),
    ],
)
def test_due(
    since: int,
    pending_s: float,
    last_backup_s: float,
    idle_s: float,
    since_backup_s: float,
    want: str | None,
) -> None:
    assert POLICY.due(since, pending_s, last_backup_s, idle_s, since_backup_s) == want


def test_a_low_floor_lowers_the_quiet_threshold() -> None:
    policy = BackupPolicy(min_records=30, replay_s=0.25, quiet_s=5.0, interval_s=300.0)
    assert policy.due(30, 0.0, 0.0, 6.0, 0.0) == "quiet"
    assert policy.due(29, 0.0, 0.0, 6.0, 0.0) is None


def test_no_replay_budget_backs_up_every_min_records() -> None:
    policy = BackupPolicy(min_records=30, replay_s=0.0, quiet_s=5.0, interval_s=300.0)
    assert policy.due(30, 0.001, 5.0, 0.0, 1.0) == "replay budget"
    assert policy.due(29, 0.001, 5.0, 0.0, 1.0) is None
