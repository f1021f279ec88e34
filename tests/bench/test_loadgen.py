"""The load generator's HTTP client: keep-alive, reconnects, and every failure seen as one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import uvloop

from bench.loadgen import Client, ConnectionClosed

Handler = Callable[[bytes], bytes | None]
"""Request bytes -> the answer to write (None: close without answering)."""


@asynccontextmanager
async def server(answer: Handler) -> AsyncIterator[tuple[int, list[int]]]:
    """A tiny HTTP/1.1 server; yields its port and the number of requests per connection."""
    per_connection: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        per_connection.append(0)
        me = len(per_connection) - 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + await reader.readexactly(length)
                per_connection[me] += 1
                out = answer(request)
                if out is None:
                    break
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield port, per_connection
    finally:
        srv.close()
        await srv.wait_closed()


def ok(body: bytes = b"{}", extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def run(coro: object) -> object:
    return uvloop.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


@pytest.mark.timeout(30)
def test_requests_share_one_keep_alive_connection_and_carry_json() -> None:
    seen: list[bytes] = []

    def answer(request: bytes) -> bytes:
        seen.append(request)
        return ok()

    async def main() -> list[int]:
        async with server(answer) as (port, per_connection):
            client = Client("127.0.0.1", port)
            statuses = [await client.post("/svc/h", {"i": n}) for n in range(5)]
            client.close()
            assert per_connection == [5]
            return statuses

    assert run(main()) == [200] * 5
    assert seen[0].startswith(b"POST /svc/h HTTP/1.1\r\n")
    assert json.loads(seen[3].split(b"\r\n\r\n", 1)[1]) == {"i": 3}


@pytest.mark.timeout(30)
def test_a_connection_the_server_closes_after_answering_is_replaced() -> None:
    async def main() -> tuple[list[int], list[int]]:
        async with server(lambda _r: ok(extra="Connection: close\r\n")) as (port, per_conn):
            client = Client("127.0.0.1", port)
            statuses = [await client.post("/x", 1) for _ in range(3)]
            client.close()
            return statuses, per_conn

    statuses, per_connection = run(main())  # type: ignore[misc]
    assert statuses == [200, 200, 200]
    assert per_connection == [1, 1, 1]


@pytest.mark.timeout(30)
def test_no_answer_is_an_error_not_a_hang() -> None:
    async def closes() -> None:
        async with server(lambda _r: None) as (port, _):
            with pytest.raises(ConnectionClosed):
                await Client("127.0.0.1", port).post("/x", 1)

    async def silent() -> None:
        async with server(lambda _r: b"") as (port, _):
            client = Client("127.0.0.1", port, timeout_s=0.3)
            with pytest.raises(TimeoutError):
                await client.post("/x", 1)
            client.close()

    async def nobody() -> None:
        async with server(ok) as (port, _):
            pass  # closed again: nothing listens on the port
        with pytest.raises(OSError):
            await Client("127.0.0.1", port).post("/x", 1)

    for case in (closes, silent, nobody):
        run(case())
