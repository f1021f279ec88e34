"""An operator's edit of an object's or workflow's state, checked against its version.

Restate's contract (``POST /services/{name}/state``): the edit names the version of the
state it was made from (``engine.queries.state_version``) and replaces the whole state. It
is refused with 409 if the state moved since (another edit, an invocation that completed)
or if an exclusive invocation holds the key now: that invocation read the state and will
write its own changes when it completes, so an edit under it would be lost or mixed in.
"""

from __future__ import annotations

from perdure.engine import keyed, keys
from perdure.engine.model import Failure, StateOp, StateOpKind
from perdure.engine.queries import state_version
from perdure.engine.records import (
    Action,
    Envelope,
    Response,
    ResponseStatus,
    SendResponse,
    SetState,
)
from perdure.engine.storage import PartitionTxn


def set_state(_env: Envelope, c: SetState, txn: PartitionTxn) -> list[Action]:
    """Applies (or refuses) an operator's state edit and answers its request."""
    current = state_version(keyed.read_state(txn, c.service, c.key))
    holder = txn.get(keys.lock_key(c.service, c.key))
    failure: Failure | None = None
    if holder is not None:
        failure = Failure(
            409, f"{c.service}/{c.key} is held by {holder.decode()}: edit it when it is idle"
        )
    elif c.version != current:
        failure = Failure(
            409, f"the state of {c.service}/{c.key} is at version {current}, not {c.version}"
        )
    if failure is not None:
        response = Response(c.reply.request_id, "", ResponseStatus.FAILED, None, failure)
        return [SendResponse(c.reply, response)]
    ops = [StateOp(StateOpKind.CLEAR_ALL)]
    ops += [StateOp(StateOpKind.SET, name, value) for name, value in c.new_state]
    keyed.apply_state_ops(txn, c.service, c.key, ops)
    version = state_version(c.new_state).encode()
    response = Response(c.reply.request_id, "", ResponseStatus.ACCEPTED, version)
    return [SendResponse(c.reply, response)]
