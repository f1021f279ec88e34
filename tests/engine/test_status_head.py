"""The hand-walked head of a stored status agrees with fastavro's full decode."""

from __future__ import annotations

import pytest

from perdure.engine import codec
from perdure.engine.model import Failure, HandlerKind, InvocationStatus, Phase, Target
from perdure.engine.status_head import encoded_text, read_head


def status(**overrides: object) -> InvocationStatus:
    fields: dict[str, object] = {
        "invocation_id": "inv_" + "a" * 32,
        "target": Target("svc", "h"),
        "phase": Phase.RUNNING,
        "created_ms": 1_700_000_000_000,
        "retry_count": 0,
        "journal_length": 0,
        "idempotency_key": None,
        "result": None,
        "failure": None,
        "completed_ms": None,
        "last_error": None,
        "headers": (),
        "handler_kind": HandlerKind.SERVICE,
        "caller": None,
        "execute_at_ms": None,
        "suspended_on": (),
        "cancel_requested": False,
    }
    fields.update(overrides)
    return InvocationStatus(**fields)  # type: ignore[arg-type]


CASES = [
    status(),
    status(target=Target("cart", "add", "alice"), handler_kind=HandlerKind.EXCLUSIVE),
    status(target=Target("cart", "add", "")),  # the empty key is a key
    status(target=Target("сервис", "obsługa", "ключ/😀")),  # multi-byte text
    status(target=Target("s" * 300, "h" * 70, "k" * 9000)),  # lengths of several varint bytes
    status(phase=Phase.SCHEDULED, created_ms=0, execute_at_ms=5),
    status(phase=Phase.INBOXED, retry_count=70, journal_length=1_000_000),
    status(idempotency_key="order-1", result=b"x" * 200),
    status(phase=Phase.COMPLETED, result=b'"ok"', completed_ms=3),
    status(phase=Phase.COMPLETED, failure=Failure(500, "boom " * 40), completed_ms=3),
    status(phase=Phase.COMPLETED, failure=Failure(-1, ""), idempotency_key=""),
    status(last_error="Traceback...\nValueError: x", suspended_on=(1, 2), cancel_requested=True),
]


@pytest.mark.parametrize("s", CASES)
def test_the_head_is_what_a_full_decode_reads(s: InvocationStatus) -> None:
    raw = codec.encode_status(s)
    head = read_head(raw)
    assert head is not None
    full = codec.decode_status(raw)
    assert (head.target, head.phase, head.created_ms, head.failure) == (
        full.target,
        full.phase,
        full.created_ms,
        full.failure,
    )
    for text in (s.target.service, s.target.handler, s.target.key):
        if text is not None:
            assert encoded_text(text) in raw, "a filter's bytes are in every status it matches"


@pytest.mark.parametrize("cut", [0, 1, 5, 20])
def test_what_cannot_be_walked_is_left_to_the_full_decode(cut: int) -> None:
    raw = codec.encode_status(status(phase=Phase.COMPLETED, failure=Failure(500, "boom")))
    assert read_head(raw[:cut]) is None
    assert read_head(b"\xff" * 40) is None
