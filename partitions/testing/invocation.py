"""What a test holds of an invocation, and how its outcome reaches the test."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from perdure.engine.records import Response, ResponseStatus
from perdure.sdk import TerminalError
from perdure.sdk.hosting import decode

if TYPE_CHECKING:
    from perdure.partitions.testing.runtime import TestRuntime

OutputT = TypeVar("OutputT")


class StuckError(RuntimeError):
    """The test waits for an outcome that nothing in the runtime can bring about."""


class Invocation(Generic[OutputT]):
    """A started invocation: its id, and its result when the test wants to wait for it.

    ``invocation_id`` is the name the HTTP client's handles use too (``Sent.invocation_id``);
    ``id`` is kept as another name for it.
    """

    def __init__(self, runtime: TestRuntime, invocation_id: str, output_type: Any) -> None:
        self.invocation_id = invocation_id
        self._runtime = runtime
        self._output_type = output_type

    @property
    def id(self) -> str:
        """The invocation's id (the same as :attr:`invocation_id`)."""
        return self.invocation_id

    async def result(self, limit: timedelta | float | None = None) -> OutputT:
        """Waits for the invocation's outcome (attach); raises its :class:`TerminalError`."""
        value: OutputT = await self._runtime._attach(self.invocation_id, self._output_type, limit)
        return value

    def __repr__(self) -> str:
        return f"Invocation({self.invocation_id!r})"


def seconds(value: timedelta | float, what: str) -> float:
    """A duration given as a ``timedelta`` or as seconds."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise TypeError(f"{what} must be a timedelta or a number of seconds, not {value!r}")
    return float(value)


def outcome(response: Response, output_type: Any) -> Any:
    if response.failure is not None:
        raise TerminalError(response.failure.message, response.failure.code)
    if response.status is ResponseStatus.NOT_FOUND:
        raise TerminalError(f"invocation {response.invocation_id} not found", 404)
    return decode(response.result or b"null", output_type, what="the handler's result")
