"""Folds a cluster's log from outside, with the engine, to check invariants on what was accepted."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from perdure.engine import codec, state_machine
from perdure.engine.records import (
    AckEntry,
    AttemptFailed,
    BackupTaken,
    Complete,
    Envelope,
    InvocationEnded,
    LeadershipChanged,
    ProposeEntry,
    PurgeExpired,
    Suspend,
    TimerFired,
)
from perdure.engine.storage import MemoryTxn

LEADER_ONLY = frozenset(
    {ProposeEntry, TimerFired, Suspend, Complete, AttemptFailed, PurgeExpired, BackupTaken}
)
"""Record kinds only a partition's leader writes. Listed here, not taken from the engine, so
that the check stands outside the fence it checks."""


class CountingTxn(MemoryTxn):
    """A :class:`MemoryTxn` that counts writes: a record that wrote nothing was not accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def put(self, key: bytes, value: bytes) -> None:
        self.writes += 1
        super().put(key, value)

    def delete(self, key: bytes) -> None:
        self.writes += 1
        super().delete(key)


@dataclass
class Fold:
    """What the log of one partition says was accepted."""

    store: CountingTxn = field(default_factory=CountingTxn)
    ended: Counter[str] = field(default_factory=Counter)
    acked: Counter[tuple[str, int]] = field(default_factory=Counter)
    leaders: list[tuple[int, str]] = field(default_factory=list)
    accepted_by_worker: Counter[str] = field(default_factory=Counter)
    """Leader-only records accepted, by the worker whose claim their epoch is."""
    unfenced: list[tuple[int, str, str]] = field(default_factory=list)
    """Leader-only records accepted although their writer did not hold the current claim:
    (offset, writer, current leader). A sound fence keeps this empty (DESIGN.md invariant 3).
    A leader's record names its writer by its epoch: the claim accepted at that epoch."""
    records: int = 0


def fold_partition(bootstrap: str, topic: str, partition: int, until: int | None = None) -> Fold:
    """Applies ``topic``'s ``partition`` from offset 0 (up to ``until`` inclusive, or its end)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "logfold", "enable.auto.commit": False}
    )
    tp = TopicPartition(topic, partition, 0)
    end = consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
    last = end - 1 if until is None else until
    consumer.assign([tp])
    fold = Fold()
    claims: dict[int, str] = {}
    deadline = time.monotonic() + 60
    offset = -1
    try:
        while offset < last:
            assert time.monotonic() < deadline, f"could not read {topic}/{partition} to {last}"
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is not None or (msg.offset() or 0) > last:
                    continue
                offset = msg.offset() or 0
                env = codec.decode_envelope(msg.value() or b"", msg.timestamp()[1])
                writes = fold.store.writes
                current = state_machine.leader(fold.store)[1]
                actions = state_machine.apply(env, fold.store)
                fold.records += 1
                accepted = fold.store.writes > writes or bool(actions)
                # A claim is "<worker id>/<assignment>".
                leader_only = type(env.command) in LEADER_ONLY
                writer = claims.get(env.epoch, f"no claim of epoch {env.epoch}")
                if accepted and leader_only and writer != current:
                    fold.unfenced.append((offset, writer, current))
                if accepted and leader_only:
                    fold.accepted_by_worker[writer.split("/")[0]] += 1
                for action in actions:
                    if isinstance(action, InvocationEnded):
                        fold.ended[action.invocation_id] += 1
                    elif isinstance(action, AckEntry):
                        fold.acked[(action.invocation_id, action.index)] += 1
                    elif isinstance(action, LeadershipChanged):
                        fold.leaders.append((action.epoch, action.leader_id))
                        claims[action.epoch] = action.leader_id
    finally:
        consumer.close()
    return fold


def read_log(bootstrap: str, topic: str, partitions: int) -> list[Envelope]:
    """Every record of the log, partition by partition, in offset order."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "logread", "enable.auto.commit": False}
    )
    out: list[Envelope] = []
    try:
        for p in range(partitions):
            tp = TopicPartition(topic, p, 0)
            end = consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
            consumer.assign([tp])
            deadline = time.monotonic() + 60
            offset = -1
            while offset < end - 1:
                assert time.monotonic() < deadline, f"could not read {topic}/{p}"
                for msg in consumer.consume(1000, 0.2):
                    if msg.error() is None:
                        offset = msg.offset() or 0
                        out.append(codec.decode_envelope(msg.value() or b"", msg.timestamp()[1]))
    finally:
        consumer.close()
    return out
