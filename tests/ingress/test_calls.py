"""Calls take the fast path, everything else goes on to FastAPI, and both answer alike.

The ingress's Kafka side is replaced by a recorder here (the real one is tested over real
processes in ``tests/integration``); what is under test is the dispatch and the answers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from perdure.engine.model import HandlerKind, Target
from perdure.engine.records import Response as LogResponse
from perdure.engine.records import ResponseStatus
from perdure.ingress.calls import CallFastPath
from perdure.ingress.config import IngressSettings
from perdure.ingress.errors import IngressError
from perdure.ingress.metrics import IngressMetrics
from perdure.ingress.routing import Route


class FakeIngress:
    """Routes every path to one handler and answers every invocation with ``answer``."""

    def __init__(self, answer: LogResponse | Exception) -> None:
        self.answer = answer
        self.invoked: list[tuple[bytes, tuple[tuple[str, str], ...]]] = []
        self.metrics = IngressMetrics()

    def route(self, segments: list[str]) -> Route:
        if segments[0] == "missing":
            raise IngressError(404, "service 'missing' not found")
        return Route(Target("svc", segments[-1]), HandlerKind.SERVICE, send=False)

    async def invoke(self, where: Route, body: bytes, *args: Any) -> tuple[str, LogResponse]:
        self.invoked.append((body, args[1]))
        if isinstance(self.answer, Exception):
            raise self.answer
        return "inv_1", self.answer


class Fallback:
    """Stands for the FastAPI app: records what reached it."""

    def __init__(self) -> None:
        self.paths: list[tuple[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.paths.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def client(ingress: FakeIngress, fallback: Fallback) -> httpx.AsyncClient:
    app = CallFastPath(fallback, ingress, IngressSettings(max_body_bytes=100))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i")


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


@pytest.mark.timeout(20)
def test_a_call_is_served_on_the_fast_path_with_its_result_and_id() -> None:
    ok = LogResponse("r", "inv_1", ResponseStatus.OK, b'{"n": 2}')
    ingress, fallback = FakeIngress(ok), Fallback()

    async def scenario() -> httpx.Response:
        async with client(ingress, fallback) as http:
            return await http.post("/svc/h", json={"n": 1}, headers={"x-trace": "t1"})

    answer = run(scenario())
    assert answer.status_code == 200
    assert answer.json() == {"n": 2}
    assert answer.headers["x-restate-id"] == "inv_1"
    assert fallback.paths == []
    body, headers = ingress.invoked[0]
    assert body == b'{"n":1}'
    assert ("x-trace", "t1") in headers and not any(k == "host" for k, _ in headers)


@pytest.mark.timeout(20)
def test_other_requests_go_on_to_fastapi() -> None:
    ingress, fallback = FakeIngress(LogResponse("r", "inv_1", ResponseStatus.OK, b"1")), Fallback()

    async def scenario() -> list[int]:
        async with client(ingress, fallback) as http:
            return [
                (await http.get("/svc/h")).status_code,
                (await http.post("/restate/awakeables/a/resolve", json=1)).status_code,
                (await http.get("/health")).status_code,
            ]

    assert run(scenario()) == [299, 299, 299]
    assert fallback.paths == [
        ("GET", "/svc/h"),
        ("POST", "/restate/awakeables/a/resolve"),
        ("GET", "/health"),
    ]
    assert ingress.invoked == []


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("path", "body", "answer", "status", "message"),
    [
        ("/missing/h", b"1", None, 404, "service 'missing' not found"),
        ("/svc/h", b"{not json", None, 400, "the request body is not valid JSON"),
        ("/svc/h", b"1" * 101, None, 413, "over the limit of 100 bytes"),
        ("/svc/h", b"1", IngressError(503, "the log cannot take the record"), 503, "the log"),
        ("/svc/h", b"1", RuntimeError("bug"), 500, "internal error in the ingress"),
        (
            "/svc/h",
            b"1",
            LogResponse("r", "inv_1", ResponseStatus.FAILED, None, None),
            500,
            "unexpected answer",
        ),
    ],
)
def test_errors_answer_in_the_ingress_shape(
    path: str, body: bytes, answer: Any, status: int, message: str
) -> None:
    ingress = FakeIngress(answer if answer is not None else RuntimeError("not reached"))

    async def scenario() -> httpx.Response:
        async with client(ingress, Fallback()) as http:
            return await http.post(path, content=body)

    got = run(scenario())
    assert got.status_code == status
    assert got.json()["code"] == status
    assert message in got.json()["message"]
