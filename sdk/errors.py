"""The SDK's exceptions.

:class:`TerminalError` ends an invocation with a failure that is not retried. Any other
``Exception`` from a handler is retried under the handler's retry policy. Control-flow signals
derive from ``BaseException`` so that a handler's ``except Exception`` cannot swallow them.
"""

from __future__ import annotations

from perdure.engine.limits import LimitExceeded, check_delay_ms, check_name, failure_code


class SdkError(Exception):
    """Root of the SDK's errors."""


class TerminalError(SdkError):
    """A failure that must not be retried; the caller gets ``status_code`` and ``message``.

    Args:
        message: what went wrong, for people.
        status_code: the HTTP status the ingress answers with (default 500). The ingress
            answers a code outside 400-599 with 500, the code in the message; one outside a
            signed 32-bit integer becomes 500 here already (the log's format holds no more).
    """

    def __init__(self, message: str, status_code: int = 500) -> None:
        status_code, message = failure_code(int(status_code), str(message))
        super().__init__(message)
        self.message = message
        self.status_code = status_code

    def __repr__(self) -> str:
        return f"TerminalError({self.message!r}, status_code={self.status_code})"


class CallTimeoutError(SdkError, TimeoutError):
    """The typed client gave up waiting; the invocation goes on (it is not a failure).

    Attributes:
        invocation_id: the invocation that goes on, when the client knew it (attach to it
            with ``client.attach(invocation_id)``), else None.
    """

    def __init__(self, message: str, invocation_id: str | None) -> None:
        super().__init__(message)
        self.invocation_id = invocation_id


class HandlerDefinitionError(SdkError, TypeError):
    """A handler's signature cannot be served (raised when the decorator runs)."""


class InvocationAborted(BaseException):
    """The worker gave this attempt up (it lost the partition, or is stopping).

    Raised at the handler's next await; never catch it. The invocation itself goes on, on the
    worker that leads its partition now.
    """


def checked_name(value: str, what: str) -> str:
    """``value`` if a store key can hold it (engine/limits.py); a 400 :class:`TerminalError`
    otherwise, raised in the handler before anything is journaled."""
    try:
        return check_name(value, what)
    except LimitExceeded as err:
        raise TerminalError(str(err), 400) from None


def checked_delay_ms(value: int, what: str) -> int:
    """``value`` if the log's times can hold it; a 400 :class:`TerminalError` otherwise."""
    try:
        return check_delay_ms(value, what)
    except LimitExceeded as err:
        raise TerminalError(str(err), 400) from None
