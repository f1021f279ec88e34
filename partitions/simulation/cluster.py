"""The simulated group coordinator: which live worker owns which partition.

Like Kafka's: a member is in the group while it heartbeats within the session timeout; when
members come or go, partitions move (sticky: an owner that is still in keeps what it has). A
member that stops heartbeating (crashed, paused, cut off) is evicted only when its session
ends, and is not told: a zombie learns it lost its partitions when it next reaches the
coordinator, if ever. Its lease (partitions/lease.py) lapses before the eviction.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perdure.partitions.simulation.worker import SimWorker


class Coordinator:
    """Members, their last heartbeats, and the assignment of partitions."""

    def __init__(self, partitions: int, session_s: float, event: object) -> None:
        self.partitions = partitions
        self.session_s = session_s
        self._event = event
        self.heard: dict[str, float] = {}
        self.owner: dict[int, str] = {}
        self.assigned: dict[int, int] = {}
        """Partition -> the generation of its current assignment (a new one at each move: an
        owner that lost a partition and got it back opens it again, as Kafka makes it)."""
        self._generation = 0
        self.revoking: dict[int, str] = {}
        """Partition -> the member that must give it up before its new owner gets it."""

    def heartbeat(self, worker: SimWorker) -> bool:
        """A member's heartbeat (and lease renewal): True if the coordinator took it."""
        now = asyncio.get_running_loop().time()
        if now < worker.cut_until or not worker.alive:
            return False
        joined = worker.token not in self.heard
        self.heard[worker.token] = now
        if joined:
            self._rebalance()
        return True

    def owned(self, token: str) -> dict[int, int]:
        """The partitions ``token`` owns, with the generation of each assignment.

        A member that asks learns what it must give up, and gives it up at once (the worker
        drops every partition it does not find here): its new owner may have it from then on.
        """
        self.expire()
        for p, old in list(self.revoking.items()):
            if old == token:
                del self.revoking[p]
        return {
            p: self.assigned[p]
            for p, o in self.owner.items()
            if o == token and p not in self.revoking
        }

    def expire(self) -> None:
        now = asyncio.get_running_loop().time()
        gone = [t for t, at in self.heard.items() if now - at > self.session_s]
        for token in gone:
            del self.heard[token]
            for p, old in list(self.revoking.items()):
                if old == token:
                    del self.revoking[p]  # evicted: its lease lapsed already
        if gone:
            self._rebalance()

    def _rebalance(self) -> None:
        members = sorted(self.heard)
        if not members:
            self.owner.clear()
            return
        load = {m: 0 for m in members}
        for p, o in list(self.owner.items()):
            if o in load:
                load[o] += 1
            else:
                del self.owner[p]
        fair = -(-self.partitions // len(members))
        for p in range(self.partitions):
            held = self.owner.get(p)
            if held is not None and load[held] > fair:
                load[held] -= 1
                del self.owner[p]
                self.revoking[p] = held
        for p in range(self.partitions):
            if p not in self.owner:
                to = min(members, key=lambda m: (load[m], m))
                self.owner[p] = to
                load[to] += 1
                self._generation += 1
                self.assigned[p] = self._generation
        emit = self._event
        if callable(emit):
            emit(f"coordinator: {dict(sorted(self.owner.items()))}")
