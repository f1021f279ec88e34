"""The Perdure SDK. Only the names in ``__all__`` are public (a test pins the list)."""

from perdure.sdk.client import AsyncPerdureClient, PerdureClient
from perdure.sdk.context import Context
from perdure.sdk.endpoint import Endpoint
from perdure.sdk.errors import CallTimeoutError, InvocationAborted, TerminalError
from perdure.sdk.journal import SendHandle
from perdure.sdk.keyed_context import (
    DurablePromise,
    ObjectContext,
    ObjectSharedContext,
    WorkflowContext,
    WorkflowSharedContext,
)
from perdure.sdk.options import RetryPolicy, RunOptions, Subscribe
from perdure.sdk.service import Service, VirtualObject, Workflow

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
