"""One attempt of a remote handler as one bidirectional HTTP/2 stream (Restate's BIDI mode).

The request opens with ``Start`` and the journal so far, and stays open: each command the SDK
sends is proposed to the log as it arrives, and once journaled its notification goes back on the
same stream (a run's result, a send's invocation id), so the SDK goes on without a new request
and without replaying. A timer or a call that completes later is sent when it does. When the SDK
is silent for ``suspend_after_s`` (it waits, or runs a long step), Perdure ends its side of the
stream; the SDK answers with ``Suspension`` (after the step, for a step) and the attempt waits like
a request-response one (partitions/remote/answer.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from perdure.engine.deployments import Deployment
from perdure.engine.model import EntryKind, JournalEntry
from perdure.engine.records import Command, StartInvocation
from perdure.partitions.remote import restate_protocol_pb2 as pb
from perdure.partitions.remote import wire as w
from perdure.partitions.remote.answer import ABORT_S, WAITING, AttemptOps, RemoteFailure, conclude
from perdure.partitions.remote.commands import AnswerReader, CalleeKinds, NewEntry
from perdure.partitions.remote.h2_client import Exchange, H2Client
from perdure.partitions.remote.journal import (
    callee_notification,
    outcome_of,
    promise_notification,
    replay,
    slept_notification,
    start_frame,
)


def notification(entry: JournalEntry, completions: tuple[int, ...]) -> w.Frame | None:
    """What the SDK is told when ``entry`` is journaled or completes; None: nothing yet."""
    kind = entry.kind
    if not completions:
        return None  # an entry of Perdure's own (a command's payload): nothing to tell
    if kind is EntryKind.RUN:
        done = pb.RunCompletionNotificationMessage(
            completion_id=completions[0], **outcome_of(entry)
        )
        return w.frame(w.RUN_COMPLETION, done)
    if kind is EntryKind.SEND and entry.call is not None:
        note = callee_notification(completions[0], entry.call.callee_id)
        return w.frame(w.CALL_INVOCATION_ID, note)
    if not entry.completed:
        return None
    if kind is EntryKind.SLEEP:
        return w.frame(w.SLEEP_COMPLETION, slept_notification(completions[0]))
    if kind in (EntryKind.GET_PROMISE, EntryKind.PEEK_PROMISE, EntryKind.COMPLETE_PROMISE):
        return promise_notification(entry, completions[0])
    if kind is EntryKind.CALL:
        result = outcome_of(entry)
        returned = pb.CallCompletionNotificationMessage(completion_id=completions[1], **result)
        return w.frame(w.CALL_COMPLETION, returned)
    return None


class StreamAttempt:
    """Runs one stream of an attempt; :meth:`run` returns its command, or None to go again."""

    def __init__(
        self,
        start: StartInvocation,
        journal: list[JournalEntry],
        ops: AttemptOps,
        pinned: bool,
        kinds: CalleeKinds,
        suspend_after_s: float,
    ) -> None:
        self.start = start
        self.journal = journal
        self.ops = ops
        self.pinned = pinned
        self._kinds = kinds
        self._suspend_after_s = suspend_after_s
        self._acks: list[tuple[int, asyncio.Future[JournalEntry | None]]] = []
        self._waits: dict[asyncio.Future[JournalEntry | None], tuple[int, tuple[int, ...]]] = {}

    async def run(
        self,
        client: H2Client,
        url: str,
        headers: dict[str, str],
        on_exchange: Callable[[int], None],
    ) -> Command | None:
        sent = replay(self.start, self.journal)
        first = start_frame(self.start, len(sent.frames)).to_bytes()
        first += b"".join(f.to_bytes() for f in sent.frames)
        reader = AnswerReader(self.start, len(self.journal), sent.next_completion, self._kinds)
        proposed = 0
        on_exchange(1)
        try:
            async with client.stream(url, headers, first) as ex:
                status = await ex.status()
                if status != 200:
                    raise RemoteFailure(f"{url} answered {status}")
                frames = _frames(ex.chunks())
                next_frame: asyncio.Future[w.Frame] = asyncio.ensure_future(anext(frames))
                try:
                    while True:
                        # Silence: the SDK waits (a timer, a call, an awakeable) or runs a long
                        # step; either way it suspends once its request ends, as Restate's
                        # inactivity timeout has it, and the attempt holds no stream.
                        suspending = not ex.request_ended
                        timeout = self._suspend_after_s if suspending else ABORT_S
                        waiting: set[asyncio.Future[object]] = {next_frame, *self._waits}  # type: ignore[arg-type]
                        done, _ = await asyncio.wait(
                            waiting,
                            timeout=timeout,
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                        if not done:
                            if not suspending:
                                raise RemoteFailure(f"{url}: nothing for {timeout:.0f}s")
                            await ex.end_request()  # the SDK suspends: no stream held
                            continue
                        finished = [f for f in self._waits if f in done]
                        await self._completed(finished, ex)
                        if next_frame not in done:
                            continue
                        try:
                            f = next_frame.result()
                        except StopAsyncIteration:
                            raise RemoteFailure(
                                "the endpoint's answer ended without End, Suspension or Error"
                            ) from None
                        ended = reader.feed(f)
                        proposed = await self._propose_ready(reader, proposed, ex)
                        if ended:
                            # End the request too: the stream then closes on both sides
                            # without a reset (see H2Client.stream).
                            await ex.end_request()
                            break
                        next_frame = asyncio.ensure_future(anext(frames))
                finally:
                    next_frame.cancel()
        finally:
            on_exchange(-1)
        answer = reader.answer
        complete = proposed == len(answer.entries)
        if not self.pinned and answer.journals_at_end:
            self._pin()
        return await conclude(self.start, self.journal, self.ops, answer, self._acks, complete)

    def _pin(self) -> None:
        self._acks.append((0, self.ops.propose(0, self.journal[0])))
        self.pinned = True

    async def _propose_ready(self, reader: AnswerReader, proposed: int, ex: Exchange) -> int:
        """Proposes the entries the SDK asked for, in order, as far as their results are in."""
        entries = reader.answer.entries
        while proposed < len(entries) and entries[proposed].run_completion is None:
            new: NewEntry = entries[proposed]
            if not self.pinned:
                self._pin()
            index = len(self.journal)
            self.journal.append(new.entry)
            fut = self.ops.propose(index, new.entry)
            proposed += 1
            if new.entry.kind in WAITING:
                self._waits[fut] = (index, new.completions)
                if new.entry.kind is EntryKind.CALL and new.entry.call is not None:
                    callee = new.entry.call.callee_id
                    note = w.frame(
                        w.CALL_INVOCATION_ID, callee_notification(new.completions[0], callee)
                    )
                    await _send(ex, note)
                continue
            got = await self.ops.acknowledged(index, fut)
            if got is not None:
                self.journal[index] = got
            note_ = notification(self.journal[index], new.completions)
            if note_ is not None:
                await _send(ex, note_)
        return proposed

    async def _completed(
        self, done: list[asyncio.Future[JournalEntry | None]], ex: Exchange
    ) -> None:
        for fut in done:
            index, completions = self._waits.pop(fut)
            entry = fut.result()
            if entry is None:
                continue
            self.journal[index] = entry
            note = notification(entry, completions)
            if note is not None:
                await _send(ex, note)


async def _send(ex: Exchange, frame: w.Frame) -> None:
    if not ex.request_ended:
        await ex.send(frame.to_bytes())


async def _frames(chunks: AsyncIterator[bytes]) -> AsyncIterator[w.Frame]:
    reader = w.FrameReader()
    async for chunk in chunks:
        for f in reader.feed(chunk):
            yield f


def stream_url(dep: Deployment, start: StartInvocation) -> str:
    t = start.target
    return f"{dep.uri.rstrip('/')}/invoke/{t.service}/{t.handler}"
