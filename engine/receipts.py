"""Deduplication of commands that other invocations' journals send to this partition.

A caller's outbox delivers a command (a cancel, an awakeable completion) again until its
outcome comes back, so the receiver sees it more than once. The first delivery is applied and
its outcome kept as a receipt under the target invocation; every later delivery only re-sends
that outcome. Applying a command twice would be wrong: a second cancel would cancel whatever
the target waits on by then (a saga's compensation), a second completion would answer 409 to
the resolver that won. Receipts go when the target invocation is purged.
"""

from __future__ import annotations

from perdure.engine import codec, keys
from perdure.engine.model import Caller, Failure, Reply
from perdure.engine.records import (
    Action,
    CallResult,
    Deliver,
    Envelope,
    Response,
    ResponseStatus,
    SendResponse,
)
from perdure.engine.status import notify
from perdure.engine.storage import PartitionTxn


def already_done(txn: PartitionTxn, target_id: str, caller: Caller | None) -> list[Action] | None:
    """The outcome to send again if ``caller``'s command was applied before, else None."""
    if caller is None:
        return None
    raw = txn.get(keys.receipt_key(target_id, caller.invocation_id, caller.index))
    if raw is None:
        return None
    env = codec.decode_envelope(raw, 0)
    assert isinstance(env.command, CallResult)
    return [Deliver(caller.invocation_id, env.command)]


def settle(
    txn: PartitionTxn,
    target_id: str,
    caller: Caller | None,
    result: bytes | None,
    failure: Failure | None,
    keep: bool,
) -> list[Action]:
    """Answers ``caller`` and, if ``keep`` (the target is known here), keeps the receipt."""
    if caller is None:
        return []
    action = notify(caller, result, failure)
    if keep:
        record = codec.encode_envelope(Envelope(action.command))
        txn.put(keys.receipt_key(target_id, caller.invocation_id, caller.index), record)
    return [action]


def answer_both(
    txn: PartitionTxn,
    target_id: str,
    reply: Reply | None,
    caller: Caller | None,
    failure: Failure | None,
    ok: ResponseStatus,
    known: bool,
) -> list[Action]:
    """The outcome of a command for whoever asked: an ingress waiter (``reply``, ``ok`` or
    FAILED) and another invocation's journal (``caller``, through a kept receipt)."""
    actions: list[Action] = []
    if reply is not None:
        status = ok if failure is None else ResponseStatus.FAILED
        actions.append(
            SendResponse(reply, Response(reply.request_id, target_id, status, None, failure))
        )
    result = b"true" if failure is None else None
    return actions + settle(txn, target_id, caller, result, failure, known)
