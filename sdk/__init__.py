"""The Perdure SDK. Only the names in ``__all__`` are public (a test pins the list)."""

from sdk.client import AsyncPerdureClient, PerdureClient
from sdk.context import Context
from sdk.endpoint import Endpoint
from sdk.errors import CallTimeoutError, InvocationAborted, TerminalError
from sdk.journal import SendHandle
from sdk.keyed_context import (
    DurablePromise,
    ObjectContext,
    ObjectSharedContext,
    WorkflowContext,
    WorkflowSharedContext,
)
from sdk.options import RetryPolicy, RunOptions, Subscribe
from sdk.service import Service, VirtualObject, Workflow

__all__ = [
    "AsyncPerdureClient",
    "CallTimeoutError",
    "Context",
    "DurablePromise",
    "Endpoint",
    "InvocationAborted",
    "ObjectContext",
    "ObjectSharedContext",
    "PerdureClient",
    "RetryPolicy",
    "RunOptions",
    "SendHandle",
    "Service",
    "Subscribe",
    "TerminalError",
    "VirtualObject",
    "Workflow",
    "WorkflowContext",
    "WorkflowSharedContext",
]
