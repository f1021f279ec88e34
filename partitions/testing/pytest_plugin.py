"""A pytest fixture for :class:`~partitions.testing.TestRuntime` (needs pytest-asyncio).

In the top-level ``conftest.py`` (pytest takes ``pytest_plugins`` nowhere else)::

    pytest_plugins = ["partitions.testing.pytest_plugin"]

    @pytest.fixture
    def perdure_app():
        return app            # your Endpoint

and in a test::

    @pytest.mark.asyncio
    async def test_payment(perdure_runtime):
        out = await perdure_runtime.call(process_payment, order)

Each test gets its own runtime (store, log and clock), stopped at the end of the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from partitions.testing.runtime import TestRuntime


@pytest_asyncio.fixture
async def perdure_runtime(request: pytest.FixtureRequest) -> AsyncIterator[TestRuntime]:
    """A running :class:`TestRuntime` for the Endpoint the ``perdure_app`` fixture returns."""
    app = request.getfixturevalue("perdure_app")
    async with TestRuntime(app) as rt:
        yield rt
