"""Testing handlers without Kafka: the real engine in the test's process, on virtual time.

``from partitions.testing import TestRuntime``; see partitions/testing/runtime.py, and the
README's "Testing your handlers". A pytest fixture: ``pytest_plugins =
["partitions.testing.pytest_plugin"]`` in the top-level conftest.py
(partitions/testing/pytest_plugin.py).
"""

from partitions.local.crashes import Crash
from partitions.local.memory_log import LogRecord
from partitions.testing.runtime import Invocation, StuckError, TestRuntime

__all__ = ["Crash", "Invocation", "LogRecord", "StuckError", "TestRuntime"]
