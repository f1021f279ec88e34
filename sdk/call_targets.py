"""Which invocation a call of a handler makes: the key it needs, and the id it gets.

One place for the rules the handler context (a durable call), the Python client and the test
runtime (a call from outside) all follow: a service handler takes no key, an object's or
workflow's needs one; a workflow's main handler runs once per workflow id, and a call with an
idempotency key (or a durable call, by its caller's entry) has an id derived from it.
"""

from __future__ import annotations

from perdure.engine.ids import InvocationId, workflow_run_id
from perdure.engine.model import HandlerKind
from perdure.sdk.errors import TerminalError
from perdure.sdk.service import HandlerDef


def check_key(h: HandlerDef, key: str | None, status_code: int = 400) -> None:
    """Raises :class:`TerminalError` (``status_code``) if ``key`` does not suit ``h``."""
    if h.invocation_kind is HandlerKind.SERVICE and key is not None:
        raise TerminalError(
            f"{h.service}/{h.name} is a service handler: it takes no key", status_code
        )
    if h.invocation_kind is not HandlerKind.SERVICE and key is None:
        raise TerminalError(f"{h.service}/{h.name} needs a key", status_code)


def invocation_id_for(h: HandlerDef, key: str | None, uid: bytes | None) -> InvocationId:
    """The id of an invocation of ``h`` for ``key``: the workflow run's for a workflow's main
    handler, else one routed by the key (or random for a service) with ``uid`` if given."""
    if h.invocation_kind is HandlerKind.WORKFLOW:
        assert key is not None
        return workflow_run_id(h.service, key)
    if key is None:
        return InvocationId.new_unkeyed(uid)
    return InvocationId.for_key(key.encode(), uid or InvocationId.new_unkeyed().uid)
