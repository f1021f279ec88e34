"""The Perdure SDK. Only the names in ``__all__`` are public (a test pins the list)."""

from sdk.context import Context
from sdk.endpoint import Endpoint
from sdk.errors import InvocationAborted, TerminalError
from sdk.options import RetryPolicy, RunOptions
from sdk.service import Service

__all__ = [
    "Context",
    "Endpoint",
    "InvocationAborted",
    "RetryPolicy",
    "RunOptions",
    "Service",
    "TerminalError",
]
