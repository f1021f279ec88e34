"""The TestRuntime's rough edges, tried as a new user would (issue 32): each answers at once and
says why, as the HTTP ingress would, instead of hanging or failing on a type."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from perdure import Context, Endpoint, Service, TerminalError
from perdure.partitions.testing import StuckError, TestRuntime
from perdure.sdk.client_http import Sent

served = Service("served")
elsewhere = Service("elsewhere")


@served.handler()
async def echo(_ctx: Context, x: int) -> int:
    return x


@served.handler()
async def waits(ctx: Context) -> str:
    _id, answer = ctx.awakeable(str)
    return await answer


@served.handler()
async def slow_step(ctx: Context) -> int:
    async def slow() -> int:
        await asyncio.sleep(5)  # a step on real time (a slow downstream API)
        return 1

    return await ctx.run("slow", slow)


@elsewhere.handler()
async def not_served(_ctx: Context) -> int:
    return 1


APP = Endpoint([served])


@pytest.mark.asyncio
async def test_a_handler_of_a_service_not_in_the_endpoint_is_a_404_at_once() -> None:
    began = time.perf_counter()
    async with TestRuntime(APP) as rt:
        with pytest.raises(TerminalError, match="not in this runtime's Endpoint") as err:
            await rt.call(not_served)
        assert err.value.status_code == 404
        with pytest.raises(TerminalError):
            await rt.send(not_served)
    assert time.perf_counter() - began < 1.0


@pytest.mark.asyncio
async def test_a_call_nothing_can_finish_fails_at_once_not_after_the_timeout() -> None:
    began = time.perf_counter()
    async with TestRuntime(APP) as rt:
        with pytest.raises(StuckError, match="nothing in the runtime can finish it"):
            await rt.call(waits)
    assert time.perf_counter() - began < 2.0, "30 s is the timeout; stuck is known at once"


@pytest.mark.asyncio
async def test_timeouts_take_seconds_or_timedeltas() -> None:
    async with TestRuntime(APP, timeout=2, suspend_after=0.5) as rt:
        assert await rt.call(echo, 3, timeout=1) == 3
        assert await rt.call(echo, 4, timeout=timedelta(seconds=1)) == 4
        began = time.perf_counter()
        with pytest.raises(StuckError, match=r"no answer within 0s"):
            await rt.call(slow_step, timeout=0.2)
        assert time.perf_counter() - began < 2.0
    with pytest.raises(TypeError, match="timeout must be a timedelta or a number of seconds"):
        TestRuntime(APP, timeout="2")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_handle_names_its_id_as_the_http_clients_does() -> None:
    async with TestRuntime(APP) as rt:
        handle = await rt.send(echo, 5)
        assert handle.invocation_id == handle.id and handle.invocation_id.startswith("inv_")
        assert "invocation_id" in Sent.__dataclass_fields__
        assert await handle.result(limit=1) == 5


@pytest.fixture
def perdure_app() -> Endpoint:
    return APP


@pytest.mark.asyncio
@pytest.mark.perdure(auto_advance=False, timeout=3)
async def test_the_fixture_takes_options_from_its_marker(perdure_runtime: TestRuntime) -> None:
    assert perdure_runtime._auto_advance is False and perdure_runtime._timeout_s == 3
    assert await perdure_runtime.call(echo, 6) == 6
