"""DirectPort: the runtime's way to an invoker on its own event loop (no thread to cross).

The local partition (``dev --embedded``, the TestRuntime) and the simulator run the runtime and
the handlers on one loop; the Kafka worker crosses instead (partitions/kafka/crossing.py).
"""

from __future__ import annotations

from collections.abc import Callable

from perdure.engine.records import AckEntry, StartInvocation
from perdure.partitions.handlers.invoker import Invoker


class DirectPort:
    """An ``InvokerPort`` that calls the invoker at once.

    Args:
        invoker: the invoker, looked up at each call (it is made after the runtime).
        before_ack: asked before each acknowledgement; False drops it (a planted crash).
    """

    def __init__(
        self,
        invoker: Callable[[], Invoker],
        before_ack: Callable[[AckEntry], bool] | None = None,
    ) -> None:
        self._invoker = invoker
        self._before_ack = before_ack

    def start(self, partition: int, epoch: int, start: StartInvocation) -> None:
        self._invoker().start(partition, epoch, start)

    def ack(self, partition: int, action: AckEntry) -> None:
        if self._before_ack is None or self._before_ack(action):
            self._invoker().ack(partition, action)

    def ended(self, invocation_id: str) -> None:
        self._invoker().ended(invocation_id)

    def release(self, partition: int) -> None:
        self._invoker().release_partition(partition)
