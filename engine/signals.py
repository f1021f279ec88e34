"""Signals: the awakeables of Restate's SDKs, resolved by id before or after they are journaled.

A Restate SDK (service protocol V5+) makes an awakeable without telling the engine: it takes a
signal index (17, 18, ...) and builds the id from the invocation and that index
(engine/ids.py ``signal_awakeable_id``). The remote invoker journals an ``awakeable`` entry named
``restate:signal:{index}`` only when the SDK waits for it, which may be after the id was handed
out and resolved. So a resolution (``CompleteAwakeable`` with ``index = -signal``) completes that
entry if it exists, and otherwise is kept (``keys.signal_key``) until the entry is proposed, which
then journals it completed. A second resolution of the same signal is a 409, like an awakeable's.
"""

from __future__ import annotations

from dataclasses import replace

from engine import codec, keys, receipts
from engine.lifecycle import complete_entry
from engine.model import EntryKind, Failure, JournalEntry, Phase
from engine.records import Action, CompleteAwakeable, Envelope, ResponseStatus
from engine.status import get_entry, get_status
from engine.storage import PartitionTxn

ENTRY_PREFIX = "restate:signal:"


def entry_name(signal: int) -> str:
    """The name of the journal entry that waits for ``signal``."""
    return f"{ENTRY_PREFIX}{signal}"


def signal_of(name: str) -> int | None:
    """The signal an entry's name waits for, or None."""
    if not name.startswith(ENTRY_PREFIX):
        return None
    rest = name[len(ENTRY_PREFIX) :]
    return int(rest) if rest.isdigit() else None


def complete_signal(env: Envelope, c: CompleteAwakeable, txn: PartitionTxn) -> list[Action]:
    """Resolves or rejects signal ``-c.index`` of ``c.invocation_id``."""
    again = receipts.already_done(txn, c.invocation_id, c.caller)
    if again is not None:
        return again
    signal = -c.index
    s = get_status(txn, c.invocation_id)
    failure: Failure | None = None
    actions: list[Action] = []
    name = entry_name(signal)
    if s is None or s.phase is Phase.COMPLETED:
        failure = Failure(404, "awakeable not found")
    else:
        index = next(
            (
                i
                for i in range(s.journal_length)
                if (e := get_entry(txn, c.invocation_id, i)) is not None
                and e.kind is EntryKind.AWAKEABLE
                and e.name == name
            ),
            None,
        )
        done = JournalEntry(EntryKind.AWAKEABLE, name, c.value, c.failure, completed=True)
        if index is not None:
            entry = get_entry(txn, c.invocation_id, index)
            if entry is None or entry.completed:
                failure = Failure(409, "the awakeable was already completed")
            else:
                done = replace(entry, value=c.value, failure=c.failure, completed=True)
                actions.extend(complete_entry(txn, s, index, done, env.timestamp_ms))
        elif txn.get(keys.signal_key(c.invocation_id, signal)) is not None:
            failure = Failure(409, "the awakeable was already completed")
        else:
            txn.put(keys.signal_key(c.invocation_id, signal), codec.encode_entry(done))
    return actions + receipts.answer_both(
        txn, c.invocation_id, c.reply, c.caller, failure, ResponseStatus.OK, s is not None
    )


def take_early(txn: PartitionTxn, invocation_id: str, entry: JournalEntry) -> JournalEntry | None:
    """The resolution that came before ``entry`` (an awakeable proposed for a signal), if any."""
    signal = signal_of(entry.name)
    if signal is None:
        return None
    key = keys.signal_key(invocation_id, signal)
    raw = txn.get(key)
    if raw is None:
        return None
    txn.delete(key)
    return replace(codec.decode_entry(raw), state_ops=entry.state_ops)
