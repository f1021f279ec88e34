"""RemoteInvoker: runs an attempt of a registered deployment's handler over Restate's protocol.

Request-response mode: each exchange is one ``POST {uri}/invoke/{service}/{handler}`` whose
body is ``Start`` and the journal so far (partitions/remote/journal.py); the SDK replays it, runs
the handler until it needs something the journal does not have yet, and answers with its new
commands and ``Suspension`` (or ``Output`` and ``End``, or ``Error``). The new commands are
proposed to the log as journal entries exactly like an in-process handler's steps, and acknowledged
by the leader before anything depends on them, so a run result the SDK proposed is never run
again once journaled (DESIGN.md invariant 4). A run result proposed and lost with a crash runs
again (at-least-once until journaled), as in process.

The attempt then goes on at once when what the SDK waits for is there (a run's result, just
journaled), and otherwise waits for it like an in-process handler: past ``suspend_after_s`` it
suspends, holding no request open, and the partition starts it again when the timer fires or the
call returns. An HTTP failure, a broken stream or the SDK's ``Error`` fails the attempt, which is
retried with the default retry policy; a ``TerminalError`` of the handler is its output.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import httpx

from perdure.engine.deployments import PIN_ENTRY, Deployment
from perdure.engine.model import EntryKind, Failure, JournalEntry
from perdure.engine.records import Command, Complete, StartInvocation
from perdure.partitions.remote import wire as w
from perdure.partitions.remote.answer import ABORT_S, AttemptOps, RemoteFailure, conclude
from perdure.partitions.remote.commands import AnswerReader
from perdure.partitions.remote.h2_client import H2Client, H2Error
from perdure.partitions.remote.journal import (
    ProtocolError,
    RefusedCommand,
    UnsupportedCommand,
    replay,
)
from perdure.partitions.remote.journal import start_frame as start_message
from perdure.partitions.remote.service_directory import ServiceDirectory
from perdure.partitions.remote.stream import StreamAttempt, stream_url

log = logging.getLogger("perdure.remote")

CONNECT_S = 5.0
REGISTRATION_WAIT_S = 5.0
"""How long a worker waits to read a registration it has not seen yet before it parks an
invocation (the ingress may route to a service a moment before the worker reads its entry)."""


class RemoteInvoker:
    """Runs attempts of the services that registered deployments serve."""

    def __init__(
        self,
        directory: ServiceDirectory,
        on_exchange: Callable[[int], None],
        suspend_after_s: float = 1.0,
        streams: bool = True,
    ) -> None:
        self.directory = directory
        self.suspend_after_s = suspend_after_s
        self.streams = streams
        """Bidirectional streams with endpoints that offer them (else a request per step)."""
        self._http1: httpx.AsyncClient | None = None
        self._h2 = H2Client(ABORT_S)
        self._on_exchange = on_exchange
        """Called with +1 when an exchange starts and -1 when it ends (a gauge)."""

    def _client(self) -> httpx.AsyncClient:
        """The HTTP/1.1 client (HTTP/2 endpoints go through :class:`H2Client`)."""
        if self._http1 is None:
            timeout = httpx.Timeout(ABORT_S, connect=CONNECT_S)
            self._http1 = httpx.AsyncClient(timeout=timeout)
        return self._http1

    async def close(self) -> None:
        if self._http1 is not None:
            await self._http1.aclose()
            self._http1 = None
        await self._h2.close()

    async def deployment(self, start: StartInvocation) -> Deployment | None:
        """The deployment an invocation runs on: pinned in its journal, else the current one."""
        if start.journal:
            first = start.journal[0]
            if first.name == PIN_ENTRY and first.value is not None:
                return Deployment.from_json(first.value)
            return None
        return await self.directory.wait_deployment(start.target.service, REGISTRATION_WAIT_S)

    async def execute(self, start: StartInvocation, dep: Deployment, ops: AttemptOps) -> Command:
        """Runs one attempt to its end, failure or suspension (raised by ``ops.wait_any``).

        Raises:
            RemoteFailure: the attempt failed and is to be retried.
        """
        journal = list(start.journal)
        # The pin is proposed with the attempt's first entry, not on its own: an invocation
        # that journals nothing (a state update) pays no step for it, and until something is
        # journaled nothing ran durably that a new deployment could not run again.
        pinned = bool(journal)
        if not pinned:
            journal.append(JournalEntry(EntryKind.RUN, PIN_ENTRY, value=dep.to_json()))
        try:
            while True:
                if dep.mode == "bidi" and self.streams:
                    command = await self._stream_once(start, dep, journal, ops, pinned)
                else:
                    command = await self._exchange_once(start, dep, journal, ops, pinned)
                pinned = pinned or len(journal) > 1
                if command is not None:
                    return command
        except RefusedCommand as err:
            return Complete(start.invocation_id, start.attempt, failure=Failure(400, str(err)))
        except UnsupportedCommand as err:
            return Complete(
                start.invocation_id, start.attempt, failure=Failure(501, f"unsupported: {err}")
            )
        except ProtocolError as err:
            raise RemoteFailure(f"protocol: {err}") from None

    async def _stream_once(
        self,
        start: StartInvocation,
        dep: Deployment,
        journal: list[JournalEntry],
        ops: AttemptOps,
        pinned: bool,
    ) -> Command | None:
        attempt = StreamAttempt(
            start, journal, ops, pinned, self.directory.kinds, self.suspend_after_s
        )
        url = stream_url(dep, start)
        try:
            return await attempt.run(self._h2, url, _headers(start), self._on_exchange)
        except H2Error as err:
            raise RemoteFailure(f"{url}: {err}") from None
        except w.WireError as err:
            raise RemoteFailure(f"{url}: {err}") from None

    async def _exchange_once(
        self,
        start: StartInvocation,
        dep: Deployment,
        journal: list[JournalEntry],
        ops: AttemptOps,
        pinned: bool,
    ) -> Command | None:
        sent = replay(start, journal)
        frames = await self._post(start, dep, sent.frames)
        reader = AnswerReader(start, len(journal), sent.next_completion, self.directory.kinds)
        for f in frames:
            if reader.feed(f):
                break
        else:
            raise RemoteFailure("the endpoint's answer ended without End, Suspension or Error")
        answer = reader.answer
        acks: list[tuple[int, asyncio.Future[JournalEntry | None]]] = []
        if not pinned and (answer.entries or answer.journals_at_end):
            acks.append((0, ops.propose(0, journal[0])))
        complete = True
        for new in answer.entries:
            if new.run_completion is not None:
                complete = False  # a run whose result never came: it and what follows run again
                break
            index = len(journal)
            journal.append(new.entry)
            acks.append((index, ops.propose(index, new.entry)))
        return await conclude(start, journal, ops, answer, acks, complete)

    async def _post(
        self, start: StartInvocation, dep: Deployment, frames: list[w.Frame]
    ) -> list[w.Frame]:
        url = stream_url(dep, start)
        body = start_message(start, len(frames)).to_bytes() + b"".join(f.to_bytes() for f in frames)
        headers = _headers(start)
        self._on_exchange(1)
        try:
            if dep.http == "2":
                async with self._h2.post(url, headers, body) as (status, chunks):
                    return await _frames(url, status, chunks)
            async with self._client().stream("POST", url, content=body, headers=headers) as r:
                return await _frames(url, r.status_code, r.aiter_raw())
        except (httpx.HTTPError, H2Error) as err:
            raise RemoteFailure(f"{url}: {type(err).__name__}: {err}") from None
        except w.WireError as err:
            raise RemoteFailure(f"{url}: {err}") from None
        finally:
            self._on_exchange(-1)


def _headers(start: StartInvocation) -> dict[str, str]:
    return {
        "content-type": w.INVOCATION_CONTENT_TYPE,
        "accept": w.INVOCATION_CONTENT_TYPE,
        "x-restate-invocation-id": start.invocation_id,
    }


async def _frames(url: str, status: int, chunks: AsyncIterator[bytes]) -> list[w.Frame]:
    """The frames of an answer, up to the one that ends it."""
    if status != 200:
        text = b""
        async for chunk in chunks:
            text += chunk
            if len(text) > 300:
                break
        raise RemoteFailure(f"{url} answered {status}: {text[:300].decode(errors='replace')}")
    reader = w.FrameReader()
    got: list[w.Frame] = []
    async for chunk in chunks:
        for f in reader.feed(chunk):
            got.append(f)
            if f.type in (w.END, w.SUSPENSION, w.ERROR):
                return got
    return got
