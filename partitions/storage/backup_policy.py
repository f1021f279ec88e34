"""BackupPolicy: when a leader backs its partition's store up.

A new owner loads the newest backup and then replays the log written since it, so its restore
takes (load) + (replay of the suffix). The policy bounds the suffix *in time*, not in records or
in a share of the state, so a restore stays short whatever the history and the state's size:

- **Replay budget.** A backup is due once replaying what came since the last one would take
  longer than ``max(replay_s, last backup's duration)``. The replay time is measured, not
  guessed from a record count: the processor times every batch it folds, and the seconds it
  spent folding since the last backup are what a new owner spends replaying them (in bigger
  batches, so the estimate errs long). A record that costs more than most (a purge of many
  expired invocations) counts for what it costs. Tying the budget to the last backup's
  duration keeps a big state from being copied more often than the restore it saves is worth:
  the suffix then replays in about the time its backup loads, so a restore takes at most
  about twice the load.
- **A quiet spell.** A partition whose log grew by fewer than ``QUIET_MIN_RECORDS`` records in
  the last ``quiet_s`` backs up what came since: a worker that takes over after a quiet spell
  replays next to nothing, and the backup runs when nothing else needs the machine. A trickle
  (the periodic purge's record, the last backup's own) does not end a spell, or a partition
  with a purge every ``quiet_s`` would never be quiet.
- **Not for nothing.** Neither a quiet spell nor the interval backs up fewer than
  ``QUIET_MIN_RECORDS`` records that replay in under ``QUIET_MIN_REPLAY_S`` (an idle partition
  would otherwise back up each interval for the sake of its own last ``BackupTaken``), and the
  budget never backs up fewer than ``min_records`` records. ``replay_s`` = 0: a backup every
  ``min_records`` records, whatever they cost (tests use it to back up often).
- **A ceiling.** At most ``interval_s`` between backups when something came since.

The policy is pure: the caller measures and passes the figures (partitions/storage/recovery.py).
"""

from __future__ import annotations

from dataclasses import dataclass

QUIET_MIN_RECORDS = 100
"""A spell with fewer new records than this is quiet; fewer since the last backup are not worth
one unless they replay slowly (or ``min_records`` is lower)."""

QUIET_MIN_REPLAY_S = 0.05
"""Replay seconds since the last backup that are worth a quiet or periodic backup even when
they are few records."""


@dataclass(frozen=True)
class BackupPolicy:
    """When to back up.

    Args:
        min_records: records since the last backup before a budget backup.
        replay_s: the replay time a suffix may take before a backup is due (at least; the last
            backup's own duration raises it); 0: every ``min_records`` records.
        quiet_s: seconds without a burst of new records after which what came since is
            backed up.
        interval_s: a backup is due this long after the last one if anything came since.
    """

    min_records: int
    replay_s: float
    quiet_s: float
    interval_s: float

    def due(
        self,
        since: int,
        pending_s: float,
        last_backup_s: float,
        idle_s: float,
        since_backup_s: float,
    ) -> str | None:
        """Why a backup is due now, or None.

        Args:
            since: records applied since the last recorded backup.
            pending_s: seconds this partition's processor spent applying records since the
                last backup was started: what replaying them would take.
            last_backup_s: how long the last backup of this partition took to write (0: none).
            idle_s: seconds since the log last grew by ``QUIET_MIN_RECORDS`` records or more.
            since_backup_s: seconds since the last backup was started.
        """
        small = min(QUIET_MIN_RECORDS, max(self.min_records, 1))
        if since <= 0 or (since < small and pending_s < QUIET_MIN_REPLAY_S):
            return None
        if idle_s >= self.quiet_s:
            return "quiet"
        if since_backup_s >= self.interval_s:
            return "interval"
        if since < self.min_records:
            return None
        budget = max(self.replay_s, last_backup_s) if self.replay_s > 0 else 0.0
        if pending_s >= budget:
            return "replay budget"
        return None
