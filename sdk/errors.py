"""The SDK's exceptions.

:class:`TerminalError` ends an invocation with a failure that is not retried. Any other
``Exception`` from a handler is retried under the handler's retry policy. Control-flow signals
derive from ``BaseException`` so that a handler's ``except Exception`` cannot swallow them.
"""

from __future__ import annotations


class SdkError(Exception):
    """Root of the SDK's errors."""


class TerminalError(SdkError):
    """A failure that must not be retried; the caller gets ``status_code`` and ``message``.

    Args:
        message: what went wrong, for people.
        status_code: the HTTP status the ingress answers with (default 500).
    """

    def __init__(self, message: str, status_code: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code

    def __repr__(self) -> str:
        return f"TerminalError({self.message!r}, status_code={self.status_code})"


class HandlerDefinitionError(SdkError, TypeError):
    """A handler's signature cannot be served (raised when the decorator runs)."""


class InvocationAborted(BaseException):
    """The worker gave this attempt up (it lost the partition, or is stopping).

    Raised at the handler's next await; never catch it. The invocation itself goes on, on the
    worker that leads its partition now.
    """
