"""Signals: a Restate SDK's awakeables, resolved before or after the entry that waits exists.

The state machine's own records, no broker: the resolution's answer, the entry it completes and
what a replay of the log keeps (DESIGN.md invariant 1: a fold of the log).
"""

from __future__ import annotations

import pytest

from engine import keys, signals, state_machine
from engine.errors import InvalidId
from engine.ids import InvocationId, parse_signal_awakeable_id, signal_awakeable_id
from engine.model import EntryKind, JournalEntry, Reply, Target
from engine.records import (
    AckEntry,
    AnnounceLeader,
    CompleteAwakeable,
    Envelope,
    Invoke,
    ProposeEntry,
    ResponseStatus,
    SendResponse,
)
from engine.storage import MemoryTxn

T = Target("waiter", "approval")
WAIT = JournalEntry(EntryKind.AWAKEABLE, signals.entry_name(17), completed=False)


def _running() -> MemoryTxn:
    txn = MemoryTxn()
    state_machine.apply(Envelope(AnnounceLeader("w"), 1, "w", 0), txn)
    state_machine.apply(Envelope(Invoke("i", T, b"in"), 0, "", 1000), txn)
    return txn


def _resolve(txn: MemoryTxn, value: bytes, request: str = "r") -> ResponseStatus:
    c = CompleteAwakeable("i", -17, value=value, reply=Reply(0, request))
    actions = state_machine.apply(Envelope(c, 0, "", 2000), txn)
    (sent,) = [a for a in actions if isinstance(a, SendResponse)]
    assert sent.response.status is ResponseStatus.OK or sent.response.failure is not None
    return sent.response.status if sent.response.failure is None else sent.response.failure.code


def _propose(txn: MemoryTxn) -> AckEntry:
    actions = state_machine.apply(Envelope(ProposeEntry("i", 0, 0, WAIT), 1, "w", 3000), txn)
    (ack,) = [a for a in actions if isinstance(a, AckEntry)]
    return ack


def test_a_resolution_before_the_entry_is_kept_and_completes_it_when_proposed() -> None:
    txn = _running()
    assert _resolve(txn, b'"yes"') is ResponseStatus.OK
    assert _resolve(txn, b'"again"', "r2") == 409, "one resolution per awakeable"
    ack = _propose(txn)
    assert ack.entry is not None and ack.entry.completed and ack.entry.value == b'"yes"'
    assert txn.get(keys.signal_key("i", 17)) is None, "taken"


def test_a_resolution_after_the_entry_completes_it() -> None:
    txn = _running()
    ack = _propose(txn)
    assert ack.entry is not None and not ack.entry.completed
    assert _resolve(txn, b'"later"') is ResponseStatus.OK
    (entry,) = state_machine.journal(txn, "i")
    assert entry.completed and entry.value == b'"later"'
    assert _resolve(txn, b'"again"', "r2") == 409


def test_an_unknown_invocation_is_a_404() -> None:
    txn = MemoryTxn()
    state_machine.apply(Envelope(AnnounceLeader("w"), 1, "w", 0), txn)
    assert _resolve(txn, b"1") == 404


def test_signal_ids_are_restates_format() -> None:
    invocation = str(InvocationId.new_unkeyed())
    text = signal_awakeable_id(invocation, 17)
    assert text.startswith("sign_1") and "=" not in text
    assert parse_signal_awakeable_id(text) == (invocation, 17)
    # The shared core's own example: a 16-byte id 01..10 and index 17.
    assert signal_awakeable_id(
        "\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10", 17
    ) == ("sign_1AQIDBAUGBwgJCgsMDQ4PEAAAABE")
    for bad in ("sign_1", "sign_1!!", "awk_x", "sign_1AAAA"):
        with pytest.raises(InvalidId):
            parse_signal_awakeable_id(bad)
