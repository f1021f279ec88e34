"""The public names are exactly these; adding one is a decision, not an accident."""

import perdure
from perdure import sdk


def test_public_names_are_pinned() -> None:
    assert sorted(sdk.__all__) == [
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
    assert perdure.__all__ == sdk.__all__
    for name in sdk.__all__:
        assert getattr(perdure, name) is getattr(sdk, name)


def test_control_flow_signals_escape_except_exception() -> None:
    assert not issubclass(sdk.InvocationAborted, Exception)
    assert issubclass(sdk.TerminalError, Exception)
