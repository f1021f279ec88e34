"""H2Client: HTTP/2 over cleartext (prior knowledge) to deployments, on the ``h2`` state machine.

Restate's SDK endpoints speak h2c, and a worker makes one exchange per step of every remote
invocation: httpx's HTTP/2 (httpcore) spent 1.7 ms of CPU on each on this machine, this 0.3 ms
(``python -m bench.remote_sdk``). One connection per endpoint carries every stream (up to the
peer's ``max_concurrent_streams``; more wait); a connection that fails fails its open streams,
and the next request opens a new one.

Nothing waits for ever: every connection sends a PING every ``ping_interval_s`` and is failed
(with its streams) when no answer comes within ``ping_timeout_s`` — a paused SDK process, or a
connection left half-open by a lost node, answers nothing and would otherwise hold its attempts
and every new stream on it — and each wait for an answer's headers or next chunk is bounded by
``answer_timeout_s`` (Restate's abort timeout: a step that runs longer fails its attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TypeVar, cast
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

T = TypeVar("T")

CONNECT_TIMEOUT_S = 5.0
PING_INTERVAL_S = 10.0
"""How often an open connection checks that its peer still answers."""
PING_TIMEOUT_S = 10.0
"""How long a PING may go unanswered before the connection counts as dead."""


_END_GRACE_S = 5.0
"""How long a stream whose answer was read may wait for the peer's END_STREAM."""


class H2Error(Exception):
    """The connection or the stream failed; the message says how."""


@dataclass
class _Stream:
    headers: asyncio.Future[list[tuple[bytes, bytes]]]
    chunks: asyncio.Queue[bytes | BaseException | None] = field(default_factory=asyncio.Queue)


class _Connection(asyncio.Protocol):
    def __init__(self, ping_interval_s: float, ping_timeout_s: float) -> None:
        self._ping_interval_s = ping_interval_s
        self._ping_timeout_s = ping_timeout_s
        self._pinger: asyncio.Task[None] | None = None
        self._pong: asyncio.Event = asyncio.Event()
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.closed = False
        self._window = asyncio.Event()
        self._slots = asyncio.Condition()

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.h2.initiate_connection()
        # A large receive window: answers are not held back for window updates.
        self.h2.increment_flow_control_window(2**24)
        self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**24})
        self._flush()
        self._pinger = asyncio.get_running_loop().create_task(self._keep_alive())

    async def _keep_alive(self) -> None:
        while not self.closed:
            await asyncio.sleep(self._ping_interval_s)
            if self.closed:
                return
            self._pong.clear()
            with contextlib.suppress(h2.exceptions.H2Error):
                self.h2.ping(b"perdure!")
                self._flush()
            try:
                await asyncio.wait_for(self._pong.wait(), self._ping_timeout_s)
            except TimeoutError:
                self._fail(
                    H2Error(f"the peer did not answer a PING within {self._ping_timeout_s:.0f}s")
                )
                return

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as err:
            self._fail(H2Error(f"HTTP/2 protocol error: {err}"))
            return
        for event in events:
            self._event(event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(H2Error(f"the connection closed{f': {exc}' if exc else ''}"))

    # -- internals --------------------------------------------------------------------------------

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            s = self.streams.get(event.stream_id)
            if s is not None and not s.headers.done():
                s.headers.set_result(list(event.headers or []))
        elif isinstance(event, h2.events.DataReceived):
            s = self.streams.get(event.stream_id)
            if event.data and s is not None:
                s.chunks.put_nowait(event.data)
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self._end(event.stream_id, None)
        elif isinstance(event, h2.events.StreamReset):
            self._end(event.stream_id, H2Error(f"stream reset by the peer ({event.error_code})"))
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._window.set()
        elif isinstance(event, h2.events.PingAckReceived):
            self._pong.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._fail(H2Error(f"the peer closed the connection ({event.error_code})"))

    def _end(self, stream_id: int, err: BaseException | None) -> None:
        s = self.streams.pop(stream_id, None)
        if s is None:
            return
        if not s.headers.done():
            s.headers.set_exception(err or H2Error("the stream ended without headers"))
            s.headers.exception()
        s.chunks.put_nowait(err)
        asyncio.get_running_loop().create_task(self._free())

    async def _free(self) -> None:
        async with self._slots:
            self._slots.notify_all()

    def _fail(self, err: BaseException) -> None:
        self.closed = True
        if self._pinger is not None and self._pinger is not asyncio.current_task():
            self._pinger.cancel()
        for stream_id in list(self.streams):
            self._end(stream_id, err)
        self._window.set()
        if self.transport is not None:
            self.transport.close()

    def cancel(self, stream_id: int) -> None:
        """Resets a stream still open (one that ended is gone from ``streams``)."""
        if self.streams.pop(stream_id, None) is not None:
            with contextlib.suppress(h2.exceptions.H2Error):
                self.h2.reset_stream(stream_id)
                self._flush()
            asyncio.get_running_loop().create_task(self._free())  # a slot is free

    def cancel_later(self, stream_id: int) -> None:
        """Resets a stream whose answer was read, should its end not come within
        ``_END_GRACE_S``: a peer that never ends one must not hold a slot for good."""
        if stream_id in self.streams:
            asyncio.get_running_loop().call_later(_END_GRACE_S, self.cancel, stream_id)

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def _slot(self) -> None:
        async with self._slots:
            await self._slots.wait_for(
                lambda: (
                    self.closed
                    or self.h2.open_outbound_streams
                    < self.h2.remote_settings.max_concurrent_streams
                )
            )

    async def open(
        self, headers: list[tuple[bytes, bytes]], body: bytes, end: bool = True
    ) -> tuple[int, _Stream]:
        await self._slot()
        if self.closed:
            raise H2Error("the connection closed")
        stream_id = self.h2.get_next_available_stream_id()
        s = _Stream(asyncio.get_running_loop().create_future())
        self.streams[stream_id] = s
        self.h2.send_headers(stream_id, headers)
        await self._send(stream_id, body)
        if end:
            self.h2.end_stream(stream_id)
        self._flush()
        return stream_id, s

    async def send(self, stream_id: int, data: bytes, end: bool = False) -> None:
        """More of a request's body (a bidirectional stream); ``end`` closes the request side."""
        if self.closed:
            raise H2Error("the connection closed")
        try:
            await self._send(stream_id, data)
            if end:
                self.h2.end_stream(stream_id)
        except h2.exceptions.StreamClosedError:
            raise H2Error("the stream closed") from None
        self._flush()

    async def _send(self, stream_id: int, body: bytes) -> None:
        view = memoryview(body)
        while view:
            window = min(
                self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size
            )
            if window <= 0:
                self._window.clear()
                self._flush()
                await self._window.wait()
                if self.closed:
                    raise H2Error("the connection closed while sending")
                continue
            self.h2.send_data(stream_id, bytes(view[:window]))
            view = view[window:]


class H2Client:
    """Requests over one h2c connection per ``host:port``.

    Args:
        answer_timeout_s: the longest wait for an answer's headers or its next chunk.
        ping_interval_s: how often each connection checks that its peer answers.
        ping_timeout_s: how long a PING may go unanswered before the connection is failed.
    """

    def __init__(
        self,
        answer_timeout_s: float,
        ping_interval_s: float = PING_INTERVAL_S,
        ping_timeout_s: float = PING_TIMEOUT_S,
    ) -> None:
        self._answer_timeout_s = answer_timeout_s
        self._ping = (ping_interval_s, ping_timeout_s)
        self._connections: dict[tuple[str, int], _Connection] = {}
        self._connecting: dict[tuple[str, int], asyncio.Lock] = {}

    async def _connection(self, host: str, port: int) -> _Connection:
        key = (host, port)
        lock = self._connecting.setdefault(key, asyncio.Lock())
        async with lock:
            conn = self._connections.get(key)
            if conn is not None and not conn.closed:
                return conn
            loop = asyncio.get_running_loop()
            try:
                _, made = await asyncio.wait_for(
                    loop.create_connection(lambda: _Connection(*self._ping), host, port),
                    CONNECT_TIMEOUT_S,
                )
            except (OSError, TimeoutError) as err:
                raise H2Error(f"cannot connect to {host}:{port}: {err or 'timed out'}") from None
            self._connections[key] = made
            return made

    @contextlib.asynccontextmanager
    async def post(
        self, url: str, headers: dict[str, str], body: bytes
    ) -> AsyncIterator[tuple[int, AsyncIterator[bytes]]]:
        """POSTs ``body``; yields the status and the response body's chunks as they come."""
        conn, request = await self._request(url, headers)
        stream_id, stream = await conn.open(request, body)
        try:
            response = await _within(stream.headers, self._answer_timeout_s)
            status = next((int(v) for k, v in response if k == b":status"), 0)
            yield status, _chunks(stream, self._answer_timeout_s)
        except BaseException:
            conn.cancel(stream_id)  # left before its end: cancel it
            raise
        # Left normally: the caller read its answer, and the request was sent whole. The
        # answer's END_STREAM may still be on its way; the stream closes with it. A reset here
        # would reach a stream the peer has closed: node counts such frames as invalid and,
        # past its limit, drops the connection with every stream on it.
        conn.cancel_later(stream_id)

    @contextlib.asynccontextmanager
    async def stream(
        self, url: str, headers: dict[str, str], first: bytes
    ) -> AsyncIterator[Exchange]:
        """Opens a POST whose body goes on being written while its answer is read."""
        conn, request = await self._request(url, headers)
        stream_id, stream = await conn.open(request, first, end=False)
        exchange = Exchange(conn, stream_id, stream, self._answer_timeout_s)
        try:
            yield exchange
        except BaseException:
            exchange.cancel()
            raise
        if not exchange.request_ended:
            exchange.cancel()
        else:  # as in post: the answer's END_STREAM closes the stream, no reset
            conn.cancel_later(stream_id)

    async def _request(
        self, url: str, headers: dict[str, str]
    ) -> tuple[_Connection, list[tuple[bytes, bytes]]]:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        conn = await self._connection(host, port)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        request = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":authority", parts.netloc.encode()),
            (b":path", path.encode()),
            *((k.encode(), v.encode()) for k, v in headers.items()),
        ]
        return conn, request

    async def close(self) -> None:
        for conn in self._connections.values():
            if conn.transport is not None:
                conn.transport.close()
        self._connections.clear()


async def _within(fut: asyncio.Future[T], timeout_s: float) -> T:
    try:
        return await asyncio.wait_for(asyncio.shield(fut), timeout_s)
    except TimeoutError:
        raise H2Error(f"no answer within {timeout_s:.0f}s") from None


async def _chunks(stream: _Stream, timeout_s: float) -> AsyncIterator[bytes]:
    while True:
        try:
            item = await asyncio.wait_for(stream.chunks.get(), timeout_s)
        except TimeoutError:
            raise H2Error(f"nothing more of the answer within {timeout_s:.0f}s") from None
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


class Exchange:
    """One open bidirectional stream: write more of the request, read the answer."""

    def __init__(
        self, conn: _Connection, stream_id: int, stream: _Stream, timeout_s: float
    ) -> None:
        self._conn = conn
        self._id = stream_id
        self._stream = stream
        self._timeout_s = timeout_s
        self.request_ended = False

    async def status(self) -> int:
        response = await _within(self._stream.headers, self._timeout_s)
        return next((int(v) for k, v in response if k == b":status"), 0)

    def chunks(self) -> AsyncIterator[bytes]:
        return _chunks(self._stream, self._timeout_s)

    async def send(self, data: bytes) -> None:
        await self._conn.send(self._id, data)

    async def end_request(self) -> None:
        if not self.request_ended:
            self.request_ended = True
            await self._conn.send(self._id, b"", end=True)

    def cancel(self) -> None:
        """Resets the stream, if it is still open."""
        self._conn.cancel(self._id)
