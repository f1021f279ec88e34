"""Awakeables (Perdure's and a Restate SDK's signals), resolved before or after their entry exists.

The state machine's own records, no broker: the resolution's answer, the entry it completes and
what a replay of the log keeps (DESIGN.md invariant 1: a fold of the log).
"""

from __future__ import annotations

import pytest

from perdure.engine import awakeables, keys, state_machine
from perdure.engine.errors import InvalidId
from perdure.engine.ids import InvocationId, parse_signal_awakeable_id, signal_awakeable_id
from perdure.engine.model import EntryKind, JournalEntry, Reply, Target
from perdure.engine.records import (
    AckEntry,
    AnnounceLeader,
    Complete,
    CompleteAwakeable,
    Envelope,
    Invoke,
    ProposeEntry,
    PurgeExpired,
    ResponseStatus,
    SendResponse,
)
from perdure.engine.storage import MemoryTxn

T = Target("waiter", "approval")
WAIT = JournalEntry(EntryKind.AWAKEABLE, awakeables.entry_name(17), completed=False)


def _running() -> MemoryTxn:
    txn = MemoryTxn()
    state_machine.apply(Envelope(AnnounceLeader("w"), 1, "w", 0), txn)
    state_machine.apply(Envelope(Invoke("i", T, b"in"), 0, "", 1000), txn)
    return txn


def _resolve(txn: MemoryTxn, value: bytes, request: str = "r", index: int = -17) -> ResponseStatus:
    c = CompleteAwakeable("i", index, value=value, reply=Reply(0, request))
    actions = state_machine.apply(Envelope(c, 0, "", 2000), txn)
    (sent,) = [a for a in actions if isinstance(a, SendResponse)]
    r = sent.response
    if r.status is ResponseStatus.OK:
        assert r.failure is None, "a taken resolution carries no failure"
        return r.status
    assert r.status is ResponseStatus.FAILED and r.failure is not None, r
    return r.failure.code


def _propose(txn: MemoryTxn, entry: JournalEntry = WAIT, index: int = 0) -> AckEntry:
    proposal = ProposeEntry("i", 0, index, entry)
    actions = state_machine.apply(Envelope(proposal, 1, "w", 3000), txn)
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


OWN = JournalEntry(EntryKind.AWAKEABLE, "awakeable", completed=False)
STEP = JournalEntry(EntryKind.RUN, "publish", value=b"1")


def test_perdures_awakeable_resolved_before_its_proposal_lands_is_kept_for_it() -> None:
    # The SDK proposes the entry when it makes the id; a resolution through the ingress can
    # reach the partition first. It must not be a 404.
    txn = _running()
    assert _resolve(txn, b'"early"', index=0) is ResponseStatus.OK
    assert _resolve(txn, b'"again"', "r2", index=0) == 409
    ack = _propose(txn, OWN)
    assert ack.entry is not None and ack.entry.completed and ack.entry.value == b'"early"'
    assert ack.entry.name == "awakeable"
    assert txn.get(keys.early_awakeable_key("i", 0)) is None, "taken"
    (entry,) = state_machine.journal(txn, "i")
    assert entry.completed and entry.value == b'"early"'


def test_an_index_journaled_as_another_kind_is_a_404_and_a_kept_one_waits_for_its_index() -> None:
    txn = _running()
    assert _resolve(txn, b"1", index=1) is ResponseStatus.OK, "index 1 is not journaled yet"
    _propose(txn, STEP, 0)
    assert _resolve(txn, b"1", "r2", index=0) == 404, "entry 0 is a step"
    ack = _propose(txn, OWN, 1)
    assert ack.entry is not None and ack.entry.completed and ack.entry.value == b"1"


def test_a_completed_invocation_keeps_nothing_early() -> None:
    txn = _running()
    state_machine.apply(Envelope(ProposeEntry("i", 0, 0, OWN), 1, "w", 3000), txn)
    # Kept while the invocation is live (its entry 3 is not journaled yet)...
    assert _resolve(txn, b"1", "r0", index=3) is ResponseStatus.OK
    assert list(txn.scan(keys.early_awakeable_prefix("i"))), "kept for entry 3"
    # ...never taken once it ended (a scan at every end would cost the hot path), and gone
    # with the rest of it when its retention ends.
    state_machine.apply(Envelope(Complete("i", 0, b'"out"'), 1, "w", 4000), txn)
    state_machine.apply(Envelope(PurgeExpired(1), 1, "w", 10**7), txn)
    assert not list(txn.scan(keys.early_awakeable_prefix("i"))), "forgotten with the invocation"
    assert _resolve(txn, b"1", index=0) == 404, "its entry can no longer be waited for"
    assert _resolve(txn, b"1", "r2", index=5) == 404
    assert not list(txn.scan(keys.early_awakeable_prefix("i")))
