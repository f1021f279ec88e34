"""A pytest fixture for :class:`~perdure.testing.TestRuntime` (needs pytest-asyncio).

Installing Perdure registers this plugin (a ``pytest11`` entry point). Give the tests an app::

    @pytest.fixture
    def perdure_app():
        return app            # your Endpoint

and in a test::

    @pytest.mark.asyncio
    async def test_payment(perdure_runtime):
        out = await perdure_runtime.call(process_payment, order)

Each test gets its own runtime (store, log and clock), stopped at the end of the test. Its
options (those of :class:`TestRuntime`: ``auto_advance``, ``start``, ``suspend_after``,
``timeout``) come from a ``perdure_options`` fixture (a dict; none by default), and for one
test from its marker, which wins::

    @pytest.mark.perdure(auto_advance=False, timeout=5)
    async def test_reminder(perdure_runtime): ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from perdure.partitions.testing.runtime import TestRuntime


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "perdure(**options): TestRuntime options of this test's perdure_runtime fixture",
    )


@pytest.fixture
def perdure_options() -> dict[str, Any]:
    """The options of every ``perdure_runtime`` (override it to set them for a module)."""
    return {}


@pytest_asyncio.fixture
async def perdure_runtime(
    request: pytest.FixtureRequest, perdure_options: dict[str, Any]
) -> AsyncIterator[TestRuntime]:
    """A running :class:`TestRuntime` for the Endpoint the ``perdure_app`` fixture returns."""
    app = request.getfixturevalue("perdure_app")
    options = dict(perdure_options)
    marker = request.node.get_closest_marker("perdure")
    if marker is not None:
        if marker.args:
            raise TypeError("@pytest.mark.perdure takes options by name, e.g. timeout=5")
        options.update(marker.kwargs)
    async with TestRuntime(app, **options) as rt:
        yield rt
