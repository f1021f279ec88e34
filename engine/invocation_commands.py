"""Operators' commands about one invocation: purge a completed one, retry one now.

``Purge`` forgets a completed invocation before its retention ends (status, journal, result,
idempotency; a workflow's state and promises too): an attach then answers 404. A running
one is refused (409: cancel or kill it first). ``RetryNow`` starts the next attempt of an
invocation that backs off after a failed one, at once; anything else is refused (409).
"""

from __future__ import annotations

from dataclasses import replace

from perdure.engine import keyed, keys
from perdure.engine.model import Failure, HandlerKind, Phase
from perdure.engine.records import (
    Action,
    Envelope,
    Purge,
    Response,
    ResponseStatus,
    RetryNow,
    SendResponse,
)
from perdure.engine.status import forget, get_status, put_status, start_of
from perdure.engine.storage import PartitionTxn


def _answer(c: Purge | RetryNow, failure: Failure | None = None) -> SendResponse:
    status = ResponseStatus.ACCEPTED if failure is None else ResponseStatus.FAILED
    response = Response(c.reply.request_id, c.invocation_id, status, None, failure)
    return SendResponse(c.reply, response)


def purge(_env: Envelope, c: Purge, txn: PartitionTxn) -> list[Action]:
    """Forgets a completed invocation now."""
    s = get_status(txn, c.invocation_id)
    if s is None:
        return [_answer(c, Failure(404, f"invocation {c.invocation_id} not found"))]
    if s.phase is not Phase.COMPLETED:
        why = f"invocation {c.invocation_id} has not completed: cancel or kill it first"
        return [_answer(c, Failure(409, why))]
    if s.completed_ms is not None:
        txn.delete(keys.expiry_key(s.completed_ms, c.invocation_id))
    forget(txn, c.invocation_id)
    if s.handler_kind is HandlerKind.WORKFLOW and s.target.key is not None:
        keyed.forget_workflow(txn, s.target.service, s.target.key)
    return [_answer(c)]


def retry_now(env: Envelope, c: RetryNow, txn: PartitionTxn) -> list[Action]:
    """Starts the next attempt of a backing-off invocation now."""
    s = get_status(txn, c.invocation_id)
    if s is None:
        return [_answer(c, Failure(404, f"invocation {c.invocation_id} not found"))]
    due = s.execute_at_ms
    backing_off = (
        s.phase is Phase.RUNNING
        and not s.suspended_on
        and s.last_error is not None
        and due is not None
        and due > env.timestamp_ms
    )
    if not backing_off:
        return [_answer(c, Failure(409, f"invocation {c.invocation_id} is not backing off"))]
    now = replace(s, execute_at_ms=env.timestamp_ms)
    put_status(txn, now)
    # The start cuts the back-off short (the invoker drops the retry it had scheduled for the
    # same attempt, as it does for a cancel's start).
    return [start_of(txn, now), _answer(c)]
