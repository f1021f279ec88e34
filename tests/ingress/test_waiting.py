"""The ingress's waiting machinery on its own: what a request does while Kafka is away.

``Ingress.append`` is the only way the waiter reaches Kafka; here it is replaced by a recorder
that can fail like a broker that is down (the real append is tested over real processes).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from perdure.engine.ids import InvocationId
from perdure.engine.records import Attach, Detach, Response, ResponseStatus
from perdure.ingress.app import Ingress, StillRunning
from perdure.ingress.config import IngressSettings
from perdure.ingress.errors import IngressError

INV = InvocationId.new_unkeyed(b"\x01" * 16)


class Recorder:
    def __init__(self, down: bool) -> None:
        self.down = down
        self.records: list[Any] = []

    async def __call__(self, partition: int, key: bytes | None, record: Any) -> None:
        if self.down:
            raise IngressError(503, "the log cannot take the record: Local: Message timed out")
        self.records.append(record)


def ingress(down: bool, **settings: Any) -> tuple[Ingress, Recorder]:
    ing = Ingress(
        IngressSettings(reattach_interval_s=0.02, reattach_max_interval_s=0.08, **settings)
    )
    ing.log_partitions = 4
    recorder = Recorder(down)
    ing.append = recorder  # type: ignore[method-assign]
    return ing, recorder


def test_a_waiting_call_rides_out_an_outage_and_gets_its_answer() -> None:
    async def scenario() -> Response:
        ing, recorder = ingress(down=True)
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        answer = Response("r", str(INV), ResponseStatus.OK, b"2")
        asyncio.get_running_loop().call_later(0.5, fut.set_result, answer)
        got = await ing.await_answer(fut, INV, "r")
        assert recorder.records == []
        return got

    assert asyncio.run(scenario()).result == b"2"


def test_re_asking_backs_off() -> None:
    async def scenario() -> list[Any]:
        ing, recorder = ingress(down=False)
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        with pytest.raises(StillRunning):
            await ing.await_answer(fut, INV, "r", timeout_s=0.7)
        return recorder.records

    records = asyncio.run(scenario())
    attaches = [r for r in records if isinstance(r, Attach)]
    # 0.02, 0.04, 0.08, 0.08, ... within 0.7 s: far fewer than 0.7 / 0.02 = 35.
    assert 3 <= len(attaches) <= 10
    assert isinstance(records[-1], Detach), "a request that stops waiting says so"


def test_a_call_past_its_timeout_is_accepted_with_its_id() -> None:
    async def scenario() -> None:
        ing, _ = ingress(down=True)
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        with pytest.raises(StillRunning) as err:
            await ing.await_answer(fut, INV, "r", timeout_s=0.2)
        assert err.value.invocation_id == str(INV)

    asyncio.run(scenario())


def test_a_client_that_went_away_is_detached() -> None:
    async def scenario() -> list[Any]:
        ing, recorder = ingress(down=False)
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

        async def gone() -> bool:
            return True

        with pytest.raises(IngressError) as err:
            await ing.await_answer(fut, INV, "r", gone=gone)
        assert err.value.status == 499
        return recorder.records

    assert asyncio.run(scenario()) == [Detach(str(INV), "r")]


def test_a_send_asks_again_only_whether_its_invocation_exists() -> None:
    async def scenario() -> tuple[Response, list[Any]]:
        ing, recorder = ingress(down=False)
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        ing.waiters["r"] = fut
        loop = asyncio.get_running_loop()
        # The first re-ask overtakes the invocation (not found), the next one finds it running.
        loop.call_later(0.03, fut.set_result, Response("r", str(INV), ResponseStatus.NOT_FOUND))
        later = Response("r", str(INV), ResponseStatus.NOT_READY)
        loop.call_later(0.2, lambda: ing.waiters["r"].set_result(later))
        got = await ing.await_answer(fut, INV, "r", reattach_block=False)
        return got, recorder.records

    got, records = asyncio.run(scenario())
    assert got.status is ResponseStatus.NOT_READY
    assert records and all(isinstance(r, Attach) and not r.block for r in records)
