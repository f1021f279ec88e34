"""The SDK context checks what a handler asks for against the byte formats (issue 31).

On the main this issue started from, each of these handlers appended a record that stopped
its partition: a 70,000-character object key from the handler's own input, a state name or a
promise name as long, an awakeable index of 2**32. Now the handler gets a 400
``TerminalError`` before anything is journaled (or the entry fails with 404 for an id that is
no awakeable), and the partition goes on: a later call on it is answered.
"""

from __future__ import annotations

from typing import Any

import pytest

from perdure import TerminalError
from perdure.engine.ids import awakeable_id
from perdure.partitions.testing import TestRuntime
from tests.apps.edges import add, app, call_with_key, resolve, run, send_later, set_named

LONG = "k" * 70_000


async def _fails(rt: TestRuntime, handler: Any, arg: Any, key: str | None = None) -> TerminalError:
    with pytest.raises(TerminalError) as err:
        await rt.call(handler, arg, key=key)
    return err.value


@pytest.mark.asyncio
async def test_names_too_long_for_a_store_key_fail_the_handler_with_a_400() -> None:
    async with TestRuntime(app) as rt:
        err = await _fails(rt, call_with_key, LONG)
        assert err.status_code == 400 and "70000 bytes" in err.message
        err = await _fails(rt, set_named, LONG, key="a")
        assert err.status_code == 400 and "state name" in err.message
        err = await _fails(rt, run, LONG, key="wf-1")
        assert err.status_code == 400 and "promise name" in err.message
        # Nothing was rejected by the partition: the edge stopped each before the log.
        assert rt.rejected() == {}
        assert await rt.call(add, 2, key="a") == 2
        assert await rt.call(call_with_key, "a") == 3


@pytest.mark.asyncio
async def test_an_awakeable_index_past_u32_fails_the_entry_and_the_partition_goes_on() -> None:
    async with TestRuntime(app) as rt:
        sent = await rt.send(add, 1, key="b")
        await sent.result()
        for index in ("4294967296", "00", "\u0663"):
            forged = awakeable_id(sent.id, 0)[: -len("_0")] + "_" + index
            err = await _fails(rt, resolve, forged)
            assert err.status_code == 404, (index, err)
        assert await rt.call(add, 1, key="b") == 2
        assert rt.rejected() == {}


@pytest.mark.asyncio
async def test_a_delayed_send_within_the_limit_is_scheduled() -> None:
    async with TestRuntime(app) as rt:
        callee = await rt.call(send_later, 999_999_999)  # timedelta's largest day count
        assert callee.startswith("inv_")
