"""Testing handlers without Kafka: the real engine in the test's process, on virtual time.

Users import it as ``from perdure.testing import TestRuntime``; see partitions/testing/runtime.py,
and the README's "Testing your handlers". The pytest fixture (partitions/testing/pytest_plugin.py)
is registered by installing Perdure (a ``pytest11`` entry point).
"""

from perdure.partitions.local.crashes import Crash
from perdure.partitions.local.memory_log import LogRecord
from perdure.partitions.testing.invocation import Invocation, StuckError
from perdure.partitions.testing.runtime import TestRuntime

__all__ = ["Crash", "Invocation", "LogRecord", "StuckError", "TestRuntime"]
