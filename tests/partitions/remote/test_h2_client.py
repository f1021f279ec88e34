"""The HTTP/2 client of remote deployments waits for nothing for ever (issue 31, fault 7).

On the main this issue started from, nothing bounded ``await stream.headers``, the answer's
chunks or ``Exchange.status``, and no PING looked at the connection: a paused SDK process or a
half-open connection held its attempts, and every new stream on it, for ever. Here the peers are
real sockets on loopback: one that takes the connection and never says a word (a paused
process: the kernel still accepts), and a real HTTP/2 server (the ``h2`` library's state
machine) that answers PINGs but never the request (a hung step).
"""

from __future__ import annotations

import asyncio
import time

import h2.config
import h2.connection
import h2.events
import pytest

from perdure.partitions.remote.h2_client import H2Client, H2Error


async def _silent_server() -> tuple[asyncio.Server, int]:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 20)  # takes the preface and the request, answers nothing
        await asyncio.sleep(3600)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _hung_server() -> tuple[asyncio.Server, int]:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        while data := await reader.read(65536):
            conn.receive_data(data)  # PINGs are answered by the state machine itself
            writer.write(conn.data_to_send())

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.asyncio
async def test_a_peer_that_answers_nothing_fails_the_connection_at_its_ping() -> None:
    server, port = await _silent_server()
    client = H2Client(answer_timeout_s=600, ping_interval_s=0.3, ping_timeout_s=0.5)
    began = time.monotonic()
    try:
        with pytest.raises(H2Error, match="PING"):
            async with client.post(f"http://127.0.0.1:{port}/invoke", {}, b"x"):
                pass
    finally:
        await client.close()
        server.close()
    assert time.monotonic() - began < 5


@pytest.mark.asyncio
async def test_an_answer_that_never_comes_is_bounded_in_both_modes() -> None:
    server, port = await _hung_server()
    client = H2Client(answer_timeout_s=0.5, ping_interval_s=0.2, ping_timeout_s=5)
    url = f"http://127.0.0.1:{port}/invoke"
    try:
        began = time.monotonic()
        with pytest.raises(H2Error, match="no answer"):
            async with client.post(url, {}, b"x"):
                pass
        async with client.stream(url, {}, b"x") as exchange:
            with pytest.raises(H2Error, match="no answer"):
                await exchange.status()
        assert time.monotonic() - began < 5, "the PINGs were answered: the connection lives"
    finally:
        await client.close()
        server.close()


async def _late_end_server(resets: list[int]) -> tuple[asyncio.Server, int]:
    """Answers each request with headers and one DATA frame at once, and its END_STREAM 0.2 s
    later (the SDK's End message, then the end of its answer); notes every RST_STREAM."""

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())

        async def end_later(stream_id: int) -> None:
            await asyncio.sleep(0.2)
            if stream_id not in resets:
                conn.end_stream(stream_id)
                writer.write(conn.data_to_send())

        while data := await reader.read(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    conn.send_headers(event.stream_id, [(":status", "200")])
                    conn.send_data(event.stream_id, b"answer")
                    asyncio.get_running_loop().create_task(end_later(event.stream_id))
                elif isinstance(event, h2.events.StreamReset):
                    resets.append(event.stream_id)
            writer.write(conn.data_to_send())

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.asyncio
async def test_an_exchange_read_to_its_answer_closes_without_a_reset() -> None:
    """A reset of every finished stream reached streams the peer had closed; node counts those
    frames as invalid and, past its limit, drops the connection with every stream on it."""
    resets: list[int] = []
    server, port = await _late_end_server(resets)
    client = H2Client(answer_timeout_s=5, ping_interval_s=10, ping_timeout_s=10)
    url = f"http://127.0.0.1:{port}/invoke"
    try:
        async with client.post(url, {}, b"x") as (status, chunks):
            assert status == 200
            assert await anext(chunks) == b"answer"  # the End message: the caller leaves
        async with client.stream(url, {}, b"x") as exchange:
            assert await exchange.status() == 200
            await exchange.end_request()
        await asyncio.sleep(0.5)
        assert resets == [], "a finished exchange was reset"
        # One left before its answer ended and its request is reset.
        async with client.stream(url, {}, b"x") as exchange:
            assert await exchange.status() == 200
        await asyncio.sleep(0.1)
        assert len(resets) == 1
        (conn,) = client._connections.values()
        assert conn.streams == {}, "every stream was let go"
    finally:
        await client.close()
        server.close()
