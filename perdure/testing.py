"""Testing handlers without Kafka: the real engine in the test's process, on virtual time.

``from perdure.testing import TestRuntime``; the README's "Testing your handlers" shows it. The
pytest fixture ``perdure_runtime`` is registered by installing Perdure (a ``pytest11`` entry
point, :mod:`perdure.partitions.testing.pytest_plugin`); it needs pytest-asyncio.
"""

from perdure.partitions.testing import Crash, Invocation, LogRecord, StuckError, TestRuntime

__all__ = ["Crash", "Invocation", "LogRecord", "StuckError", "TestRuntime"]
