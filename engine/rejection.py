"""Rejecting a record whose apply raised, instead of stopping the partition on it.

The edges check what they append (engine/limits.py), but a record can still reach the log that
the state machine cannot apply: one written by an older edge, by a bug, or forged. Applying is
deterministic, so every replica and every replay of the log fails on the same record in the
same way; rejecting it is therefore as deterministic as applying it (DESIGN.md invariant 1).

A rejected record changes nothing of what its rule started to write (the writes are undone),
and ends what it belongs to with a clear failure:

- a record of a running invocation's attempt (a journal entry, a completion, a suspension, a
  failed attempt, a timer, a call's result) fails the invocation with the error;
- a command with a waiter or a calling journal entry (an invoke, an awakeable's completion,
  a cancellation, an operator's command) answers it with the error, and creates nothing;
- anything else is only recorded.

The store keeps each rejection under :data:`engine.keys.REJECTED`, by offset, for operators
(``perdure_records_rejected_total`` and a log line say it as it happens). Only a record that
cannot be decoded, or has an unknown version, still blocks its partition: nothing about it can
be known, so nothing about it can be decided.
"""

from __future__ import annotations

import json
from typing import Any

from perdure.engine import keys
from perdure.engine.errors import CodecError, InvalidId
from perdure.engine.lifecycle import finish
from perdure.engine.limits import LimitExceeded
from perdure.engine.model import Caller, Failure, Phase, Reply
from perdure.engine.records import (
    Action,
    AttemptFailed,
    CallResult,
    Complete,
    Envelope,
    ProposeEntry,
    RecordRejected,
    Response,
    ResponseStatus,
    SendResponse,
    Suspend,
    TimerFired,
)
from perdure.engine.status import get_status, notify
from perdure.engine.storage import PartitionTxn

_OF_AN_ATTEMPT = (ProposeEntry, Complete, Suspend, AttemptFailed, TimerFired, CallResult)
"""Records that belong to an invocation's run: rejecting one fails the invocation."""

_MESSAGE_LIMIT = 500
"""How much of an error's text a failure keeps (a rejected key may be 70,000 characters)."""


def failure_of(err: Exception) -> Failure:
    """The failure a rejection reports: 400 for input outside the formats' limits, else 500."""
    text = f"{type(err).__name__}: {err}"
    if len(text) > _MESSAGE_LIMIT:
        text = text[:_MESSAGE_LIMIT] + "..."
    code = 400 if isinstance(err, LimitExceeded | InvalidId | CodecError | OverflowError) else 500
    return Failure(code, f"the record was rejected: {text}")


def reject(env: Envelope, txn: PartitionTxn, err: Exception, offset: int) -> list[Action]:
    """Records the rejection of ``env`` at ``offset`` and ends what it belongs to.

    ``txn`` holds nothing of the record's own writes any more. If ending what the record
    belongs to raises too, that is undone as well and the record is only recorded.
    """
    failure = failure_of(err)
    kind = type(env.command).__name__
    txn.savepoint()
    try:
        actions = _end(env, txn, failure)
    except Exception:
        txn.rollback()
        actions = []
    mark = {"kind": kind, "code": failure.code, "reason": failure.message}
    txn.put(keys.rejected_key(offset, env.timestamp_ms), json.dumps(mark, sort_keys=True).encode())
    return [RecordRejected(offset, kind, failure.message), *actions]


def _end(env: Envelope, txn: PartitionTxn, failure: Failure) -> list[Action]:
    c: Any = env.command
    if isinstance(c, _OF_AN_ATTEMPT):
        s = get_status(txn, c.invocation_id)
        if s is None or s.phase is Phase.COMPLETED:
            return []
        return finish(txn, s, env.timestamp_ms, None, failure)
    actions: list[Action] = []
    reply = getattr(c, "reply", None)
    if isinstance(reply, Reply):
        invocation_id = str(getattr(c, "invocation_id", ""))
        response = Response(reply.request_id, invocation_id, ResponseStatus.FAILED, None, failure)
        actions.append(SendResponse(reply, response))
    caller = getattr(c, "caller", None)
    if isinstance(caller, Caller):
        actions.append(notify(caller, None, failure))
    return actions
