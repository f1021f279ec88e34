"""Where a test runtime kills its worker: crash points chosen by step, each taken once.

Two points per step, as a real crash can hit either:

* **before journal**: the step's action ran but its result is not in the log yet. The replay
  runs the action again, so a step whose effect is not idempotent shows it (a charge made
  twice). Only ``ctx.run`` steps have an action.
* **after journal**: the entry is durable, the handler has not gone on. The replay returns the
  journaled result without running anything, so a handler that does not replay the same
  entries in the same order fails with the journal mismatch naming the entry.

Each point of each entry of each invocation is taken once, so a crashed invocation always gets
past it on the next attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perdure.engine.model import EntryKind, JournalEntry

BEFORE = "before journal"
AFTER = "after journal"


@dataclass
class CrashPlan:
    """Which entries to crash at.

    Attributes:
        steps: entry names to crash at (a ``ctx.run``'s name, ``sleep``, a call's target);
            None: every entry.
        before_journal: crash after a ``ctx.run`` action ran, before its result is journaled.
        after_journal: crash right after an entry is journaled.
    """

    steps: frozenset[str] | None
    before_journal: bool
    after_journal: bool
    taken: set[tuple[str, int, str]] = field(default_factory=set)

    def _matches(self, entry: JournalEntry) -> bool:
        return self.steps is None or entry.name in self.steps

    def take(self, point: str, invocation_id: str, index: int, entry: JournalEntry) -> bool:
        """Whether to crash at ``point`` of entry ``index`` now (once per point and entry)."""
        wanted = self.before_journal if point == BEFORE else self.after_journal
        if not wanted or not self._matches(entry):
            return False
        if point == BEFORE and entry.kind is not EntryKind.RUN:
            return False
        mark = (invocation_id, index, point)
        if mark in self.taken:
            return False
        self.taken.add(mark)
        return True


@dataclass(frozen=True, slots=True)
class Crash:
    """One crash the runtime made: of which invocation, at which entry and point."""

    invocation_id: str
    index: int
    name: str
    point: str

    def __str__(self) -> str:
        return f"crash {self.point} entry {self.index} ({self.name!r}) of {self.invocation_id}"
