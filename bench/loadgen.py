"""A lean HTTP/1.1 load generator: closed-loop clients on keep-alive connections.

The load generator shares the machine's two cores with the systems it measures, so what it
spends is taken from them: aiohttp's client took 2.5 ms of CPU per call (1.24 cores at 495
calls/s, `bench.run` noop at concurrency 64, bench-20261202-024837), more than Perdure's
worker and ingress together. This one writes each request as one ``bytes`` and parses
answers with ``httptools`` (llhttp) in an ``asyncio.Protocol`` on uvloop: a fraction of
that. Both systems get the same requests from it (``Host``, ``Content-Type``,
``Content-Length``; no other headers).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import httptools


class ConnectionClosed(Exception):
    """The server closed the connection before it answered."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, answered in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as err:
            self._fail(ConnectionClosed(f"unparsable answer: {err}"))
            assert self.transport is not None
            self.transport.close()

    def on_message_complete(self) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(self.parser.get_status_code())
        if not self.parser.should_keep_alive():
            self.closed = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionClosed(str(exc) if exc else "closed by the server"))

    def _fail(self, err: Exception) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(err)


class Client:
    """One closed-loop client against ``host:port``; reconnects when the server closes."""

    def __init__(self, host: str, port: int, timeout_s: float = 60.0) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._conn: _Connection | None = None

    async def post(self, path: str, body: Any) -> int:
        """POSTs ``body`` as JSON; returns the answer's status code.

        Raises:
            ConnectionClosed: the server closed the connection before answering.
            OSError: the server cannot be reached.
            TimeoutError: no answer within ``timeout_s``.
        """
        payload = json.dumps(body).encode()
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        conn = self._conn
        if conn is None or conn.closed:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(_Connection, self.host, self.port)
            self._conn = conn
        conn.answer = asyncio.get_running_loop().create_future()
        assert conn.transport is not None
        conn.transport.write(request)
        try:
            return await asyncio.wait_for(conn.answer, self.timeout_s)
        except BaseException:
            self.close()  # an answer may still come: this connection is out of step
            raise

    def close(self) -> None:
        if self._conn is not None and self._conn.transport is not None:
            self._conn.transport.close()
        self._conn = None
