"""Perdure: durable execution on Apache Kafka.

The handler API is imported from here::

    from perdure import Context, Endpoint, Service

The rest of the distribution lives in subpackages: :mod:`perdure.testing` (the TestRuntime and
its pytest fixture), :mod:`perdure.examples` (the README's example services, runnable with
``perdure dev perdure.examples.payments:app``), and the engine's own packages
(``perdure.engine``, ``perdure.partitions``, ``perdure.ingress``, ``perdure.sdk``), which a
handler never needs to import. In the repository those four (and ``examples``) are top-level
folders; the build maps them into ``perdure.*`` (``package-dir`` in pyproject.toml, and links in
``perdure/`` so tools that read the source tree see the same names).

Only the names in ``__all__`` are public (``tests/sdk/test_exports.py`` pins the list).
"""

from perdure.sdk import (
    AsyncPerdureClient,
    CallTimeoutError,
    Context,
    DurablePromise,
    Endpoint,
    InvocationAborted,
    ObjectContext,
    ObjectSharedContext,
    PerdureClient,
    RetryPolicy,
    RunOptions,
    SendHandle,
    Service,
    Subscribe,
    TerminalError,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)

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
