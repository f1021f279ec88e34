"""What a handler's context needs of the worker, and what it hands back: the journal driver,
the mismatch a replay can find, and the handle of a send.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from perdure.engine.model import EntryKind, JournalEntry, OutgoingRecord
from perdure.sdk.errors import TerminalError


class JournalDriver(Protocol):
    """What the worker gives a context: the way to make an entry durable."""

    def propose(
        self, index: int, entry: JournalEntry, appended: Callable[[], None] | None = None
    ) -> Awaitable[JournalEntry | None]:
        """Appends entry ``index`` to the log; resolves once the leader has applied it.

        Resolves to the completed entry when its outcome came from elsewhere (a call's
        result, a promise), or None when the proposed entry was complete already. Calls
        ``appended`` once the record is on its way to the log, before that (a sleep or a call
        resolves only when it completes, but the next entry need not wait for that).
        """
        ...

    def completion(self, index: int) -> Awaitable[JournalEntry]:
        """Resolves when journaled entry ``index``, still waiting for its outcome, completes."""
        ...

    def may_act(self) -> bool:
        """Whether the attempt may run a step now: it is still the attempt its worker runs,
        and that worker still holds the lease of the partition's leader (DESIGN.md
        invariant 8). Asked at the moment a step's function would begin."""
        ...

    def publish(
        self, index: int, entry: JournalEntry, record: OutgoingRecord
    ) -> Awaitable[JournalEntry | None]:
        """Publishes ``record`` and appends entry ``index`` in one Kafka transaction; resolves
        like :meth:`propose`."""
        ...


class JournalMismatchError(TerminalError):
    """The handler's code no longer matches its journal (it changed while invocations ran)."""

    def __init__(self, index: int, expected: JournalEntry, got_kind: EntryKind, got_name: str):
        super().__init__(
            f"journal mismatch at entry {index}: the journal has {expected.kind.value} "
            f"{expected.name!r} but the handler now does {got_kind.value} {got_name!r}",
            500,
        )


class SendHandle:
    """A one-way invocation started by a send.

    Attributes:
        invocation_id: the callee's invocation id.
    """

    def __init__(self, invocation_id: str) -> None:
        self.invocation_id = invocation_id

    def __repr__(self) -> str:
        return f"SendHandle({self.invocation_id!r})"
