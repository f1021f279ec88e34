"""EmbeddedLog: the log and its partition's leader inside the ingress's process, no broker.

``perdure dev --embedded MODULE:APP`` serves the HTTP ingress over it: one process, no Kafka
and no Java, the state in a local folder (``log.v1``, partitions/local/file_log.py) that a
restart replays. It runs the same state machine, invoker and SDK as the workers, on the wall
clock, with one partition and one leader. For trying Perdure and for laptops: Kafka stays the
production log, with what only it gives (replicas, several workers, subscriptions, the admin).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perdure.engine import state_machine
from perdure.engine.records import Envelope, Response
from perdure.partitions.local.clock import VirtualClock
from perdure.partitions.local.file_log import FileLog
from perdure.partitions.local.partition import LocalPartition
from perdure.sdk import Endpoint

log = logging.getLogger("perdure.embedded")


class EmbeddedLog:
    """The local log the ingress takes (ingress/local_log.py ``LocalLog``).

    Args:
        app: the services to run.
        folder: where the log file lives (created if missing).
        suspend_after_s: as ``PERDURE_SUSPEND_AFTER_S`` for workers.
    """

    def __init__(self, app: Endpoint, folder: Path, suspend_after_s: float = 1.0) -> None:
        self.services: dict[str, dict[str, Any]] = {
            entry["name"]: {**entry, "worker": "embedded"} for entry in app.manifest()
        }
        clock = VirtualClock(wall=True)
        self._log = FileLog(clock, folder)
        self._deliver: Callable[[Response], None] | None = None
        self.partition = LocalPartition(
            app, clock, suspend_after_s, self._log, on_response=self._respond
        )

    def on_response(self, deliver: Callable[[Response], None]) -> None:
        self._deliver = deliver

    def _respond(self, response: Response) -> None:
        if self._deliver is not None:
            self._deliver(response)

    async def append(self, envelope: Envelope) -> None:
        self.partition.append(envelope.command)

    async def start(self) -> None:
        """Replays the folder's log (acting on nothing: its actions were carried out).

        What ran before the restart goes on once :meth:`lead` is called: ``perdure dev
        --embedded`` calls it when its socket listens, so that calls are taken at once and
        wait for their answers, even while a step interrupted by the restart runs again.
        """
        replayed = len(self._log)
        self.partition.replay()
        log.info(
            "embedded log %s: %d records replayed; %d invocations go on",
            self._log.path,
            replayed,
            len(state_machine.running_invocations(self.partition.store)),
        )

    def lead(self) -> None:
        """Leads the partition from here on: starts what runs, arms the timers."""
        self.partition.lead()

    def problem(self) -> str | None:
        failure = self.partition.failure
        return None if failure is None else f"partition 0 stopped: {failure!r}"

    async def stop(self) -> None:
        await self.partition.stop()
        self._log.close()
