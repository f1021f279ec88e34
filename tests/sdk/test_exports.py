"""The SDK's public names are exactly these; adding one is a decision, not an accident."""

import sdk


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
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None


def test_control_flow_signals_escape_except_exception() -> None:
    assert not issubclass(sdk.InvocationAborted, Exception)
    assert issubclass(sdk.TerminalError, Exception)
