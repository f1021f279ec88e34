"""Awakeables resolved by id, before or after the entry that waits for them is journaled.

An awakeable's id is handed out before the log holds the entry it completes, so a resolution
can overtake it:

* Perdure's SDK proposes the ``awakeable`` entry when it makes the id, but the proposal travels
  through the worker's producer while the id may already have reached someone who resolves it
  through the ingress: the two records race to the partition.
* A Restate SDK (service protocol V5+) tells the engine nothing when it makes an awakeable: it
  takes a signal index (17, 18, ...) and builds the id from the invocation and that index
  (engine/ids.py ``signal_awakeable_id``). The remote invoker journals an ``awakeable`` entry
  named ``restate:signal:{index}`` only when the SDK waits for it.

So a resolution (``CompleteAwakeable``; ``index = -signal`` for a signal) of a live invocation
completes its entry if it exists, and otherwise is kept (``keys.early_awakeable_key``,
``keys.signal_key``) until the entry is proposed, which then journals it completed. A second
resolution of the same awakeable is a 409; an invocation that is unknown or completed is a 404.
"""

from __future__ import annotations

from dataclasses import replace

from perdure.engine import codec, keys, receipts
from perdure.engine.lifecycle import complete_entry
from perdure.engine.model import EntryKind, Failure, InvocationStatus, JournalEntry, Phase
from perdure.engine.records import Action, CompleteAwakeable, Envelope, ResponseStatus
from perdure.engine.status import get_entry, get_status
from perdure.engine.storage import PartitionTxn

ENTRY_PREFIX = "restate:signal:"

_NOT_FOUND = Failure(404, "awakeable not found")
_TWICE = Failure(409, "the awakeable was already completed")


def entry_name(signal: int) -> str:
    """The name of the journal entry that waits for ``signal``."""
    return f"{ENTRY_PREFIX}{signal}"


def signal_of(name: str) -> int | None:
    """The signal an entry's name waits for, or None."""
    if not name.startswith(ENTRY_PREFIX):
        return None
    rest = name[len(ENTRY_PREFIX) :]
    return int(rest) if rest.isdigit() else None


def complete_awakeable(env: Envelope, c: CompleteAwakeable, txn: PartitionTxn) -> list[Action]:
    """Resolves or rejects an awakeable (``c.index >= 0``) or a signal (``c.index < 0``)."""
    again = receipts.already_done(txn, c.invocation_id, c.caller)
    if again is not None:
        return again
    s = get_status(txn, c.invocation_id)
    failure, actions = (_NOT_FOUND, []) if s is None else _resolve(env, c, s, txn)
    return actions + receipts.answer_both(
        txn, c.invocation_id, c.reply, c.caller, failure, ResponseStatus.OK, s is not None
    )


def _resolve(
    env: Envelope, c: CompleteAwakeable, s: InvocationStatus, txn: PartitionTxn
) -> tuple[Failure | None, list[Action]]:
    """Completes the awakeable's entry, or keeps the resolution until it is journaled."""
    index, early = _slot(txn, s, c)
    live = s.phase is not Phase.COMPLETED
    if index is None:
        if not live:
            return _NOT_FOUND, []  # too late to be waited for
        if txn.get(early) is not None:
            return _TWICE, []
        kept = JournalEntry(EntryKind.AWAKEABLE, "", c.value, c.failure, completed=True)
        txn.put(early, codec.encode_entry(kept))
        return None, []
    entry = get_entry(txn, c.invocation_id, index)
    if entry is None or entry.kind is not EntryKind.AWAKEABLE:
        return _NOT_FOUND, []  # journaled as something else
    if entry.completed:
        return _TWICE, []
    if not live:
        return _NOT_FOUND, []
    done = replace(entry, value=c.value, failure=c.failure, completed=True)
    return None, complete_entry(txn, s, index, done, env.timestamp_ms)


def _slot(txn: PartitionTxn, s: InvocationStatus, c: CompleteAwakeable) -> tuple[int | None, bytes]:
    """The journal index of the awakeable ``c`` resolves (None: not journaled yet), and the key
    its resolution is kept under until it is."""
    if c.index >= 0:
        index = c.index if c.index < s.journal_length else None
        return index, keys.early_awakeable_key(c.invocation_id, c.index)
    signal = -c.index
    name = entry_name(signal)
    found = next(
        (
            i
            for i in range(s.journal_length)
            if (e := get_entry(txn, c.invocation_id, i)) is not None
            and e.kind is EntryKind.AWAKEABLE
            and e.name == name
        ),
        None,
    )
    return found, keys.signal_key(c.invocation_id, signal)


def take_early(
    txn: PartitionTxn, invocation_id: str, index: int, entry: JournalEntry
) -> JournalEntry | None:
    """The resolution that came before ``entry``, an awakeable proposed at ``index``, if any."""
    signal = signal_of(entry.name)
    if signal is not None:
        key = keys.signal_key(invocation_id, signal)
    else:
        key = keys.early_awakeable_key(invocation_id, index)
    raw = txn.get(key)
    if raw is None:
        return None
    txn.delete(key)
    kept = codec.decode_entry(raw)
    return replace(entry, value=kept.value, failure=kept.failure, completed=True)
