"""The typed client's timeout names the invocation that goes on (issue 31, fault 10).

On the main this issue started from, ``PerdureClient(url, timeout=2).call(...)`` raised
``TerminalError(503) cannot reach the ingress: timed out`` while the invocation ran on, and
nothing told the caller which one to attach to. Run over ``perdure dev --embedded``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from perdure import AsyncPerdureClient, CallTimeoutError, PerdureClient, TerminalError
from perdure.examples.approvals import request
from tests.partitions.test_embedded import Embedded

pytestmark = pytest.mark.fault


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    made = Embedded(tmp_path, "perdure.examples.everything:app")
    yield made
    made.stop()


def _awakeable(embedded: Embedded) -> str:
    for line in embedded.lines():
        if line[0] == "approval":
            return line[-1]
    raise AssertionError("no approval asked for")


def test_a_call_that_times_out_names_its_invocation_to_attach_to(embedded: Embedded) -> None:
    embedded.start()
    with PerdureClient(embedded.url, timeout=1) as client:
        with pytest.raises(CallTimeoutError) as err:
            client.call(request, {"item": "laptop"})
        invocation_id = err.value.invocation_id
        assert invocation_id is not None and invocation_id in str(err.value)
        assert not isinstance(err.value, TerminalError), "the call did not fail: it goes on"
        client.resolve_awakeable(_awakeable(embedded), "yes")
    with PerdureClient(embedded.url, timeout=30) as client:
        assert client.attach(invocation_id)["approved"] is True


@pytest.mark.asyncio
async def test_the_async_client_names_it_too(embedded: Embedded) -> None:
    embedded.start()
    async with AsyncPerdureClient(embedded.url, timeout=1) as client:
        with pytest.raises(CallTimeoutError) as err:
            await client.call(request, {"item": "desk"})
    assert err.value.invocation_id is not None
