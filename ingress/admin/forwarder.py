"""Forwarder: sends the outbox's records on to the other Kafka clusters, exactly once.

A handler's ``ctx.publish(..., cluster="events")`` cannot commit a transaction on two clusters, so
the worker writes the record to Perdure's outbox topic in the handler's transaction (see
partitions/kafka/publisher.py), and the admin processes forward it. Exactly once, the way
MirrorMaker 2 does it: on the destination cluster, one transaction holds a run of records *and* the
position of the outbox partition they came from (``<cluster>.forward-positions``, compacted). A
forwarder that takes an outbox partition over first initialises its transactional producer on each
destination (``transactional.id = <cluster>.forward.<partition>``: the previous owner is fenced,
its open transaction settled), then reads the positions, then forwards from there, skipping
what a destination already has. So a crash anywhere forwards nothing twice, and which process
owns a partition never matters for correctness, only for speed.

What cannot be forwarded (an unknown cluster after a configuration change, a topic deleted since
the publish) goes to the dead-letter topic of Perdure's Kafka with its reason, at least once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry, Counter

from perdure.engine import forwarding
from perdure.engine.cluster import ClusterNames
from perdure.ingress.kafka import create_topic_if_missing
from perdure.ingress.subscriptions.dead_letters import (
    DeadLetter,
    DeadLetters,
    own_headers,
    why_headers,
)
from perdure.process import faults
from perdure.process.kafka_clusters import DEFAULT, KafkaClusters
from perdure.process.kafka_settings import heartbeat_interval_ms

log = logging.getLogger("perdure.forwarder")

TRANSACTION_TIMEOUT_MS = 10_000
SESSION_TIMEOUT_MS = 10_000
_RESTART_PAUSE_S = 2.0
_HINT_INTERVAL_S = 1.0
_TOPIC_CACHE_S = 60.0


class _Restart(Exception):
    """Something failed under the forwarder: start again from the destinations' positions."""


@dataclass
class _Destination:
    """One destination cluster, for one outbox partition."""

    cluster: str
    producer: Producer
    position: int = 0
    """Outbox records below this offset are on the destination (or were dead-lettered)."""


@dataclass
class _Owned:
    """An outbox partition this forwarder owns now."""

    partition: int
    destinations: dict[str, _Destination] = field(default_factory=dict)
    next_offset: int = -1
    """Every outbox record of the partition below this is settled (the group's commit hint)."""


class ForwarderMetrics:
    """``perdure_forwarded_records{cluster}`` and ``perdure_forward_dead_lettered{reason}``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.forwarded = Counter(
            "perdure_forwarded_records",
            "Published records forwarded from the outbox to their cluster",
            ["cluster"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "perdure_forward_dead_lettered",
            "Outbox records that could not be forwarded, sent to the dead-letter topic",
            ["reason"],
            registry=registry,
        )


class Forwarder:
    """Forwards the outbox partitions the group gives this process, on a thread of its own.

    Args:
        names: the Perdure cluster's topic names.
        clusters: the Kafka clusters known by name (``default`` is Perdure's own).
        metrics: where its figures go.
    """

    def __init__(
        self, names: ClusterNames, clusters: KafkaClusters, metrics: ForwarderMetrics
    ) -> None:
        self._names = names
        self._clusters = clusters
        self._metrics = metrics
        self._default = clusters.settings(DEFAULT)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._owned: dict[int, _Owned] = {}
        self._failure: str = ""
        self._closing = False
        self._topics: dict[tuple[str, str], float] = {}
        self._admins: dict[str, AdminClient] = {}
        self._dead_letters = DeadLetters(self._default, names.dead_letter_topic)

    @property
    def _others(self) -> list[str]:
        return sorted(name for name in self._clusters.clusters if name != DEFAULT)

    def start(self) -> None:
        """Starts forwarding (nothing to do, and no consumer, if no other cluster is known)."""
        if not self._others:
            return
        self._thread = threading.Thread(target=self._run, name="forwarder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops forwarding; what was not committed is forwarded by the next owner."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except Exception:
                log.exception("forwarder failed; starting it again")
            self._stop.wait(_RESTART_PAUSE_S)

    def _session(self) -> None:
        self._failure = ""
        consumer = Consumer(
            {
                **self._default,
                "group.id": self._names.forwarder_group,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                # A forwarder that died hands its partitions over within this (not 45 s).
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "heartbeat.interval.ms": heartbeat_interval_ms(SESSION_TIMEOUT_MS),
                "logger": logging.getLogger("perdure.librdkafka"),
            }
        )
        consumer.subscribe(
            [self._names.outbox_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        next_hint = time.monotonic() + _HINT_INTERVAL_S
        self._closing = False
        try:
            while not self._stop.is_set():
                batch = consumer.consume(500, 0.2)
                if self._failure:
                    raise _Restart(self._failure)
                by_partition: dict[int, list[Message]] = {}
                for msg in batch:
                    err = msg.error()
                    if err is not None:
                        if err.fatal():
                            raise _Restart(f"its consumer failed: {err}")
                        log.warning("forwarder: consumer: %s", err)
                        continue
                    by_partition.setdefault(msg.partition() or 0, []).append(msg)
                for partition, messages in by_partition.items():
                    owned = self._owned.get(partition)
                    if owned is not None:
                        self._forward(owned, messages)
                if time.monotonic() >= next_hint:
                    self._commit_hints(consumer)
                    next_hint = time.monotonic() + _HINT_INTERVAL_S
        except _Restart as err:
            # Said before the consumer closes: leaving the group can take a rebalance.
            log.warning("forwarder: %s; starting again from the positions", err)
        finally:
            self._closing = True
            self._release_all()
            with contextlib.suppress(KafkaException):
                consumer.close()
            log.info("forwarder: consumer closed")

    # -- ownership (in the consumer's callbacks) ------------------------------------------------

    def _on_assign(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        if self._closing:
            # A consumer that lost its session rejoins while it closes: taking partitions then
            # would fence their owner for nothing.
            return
        try:
            positions = {
                name: self._open(name, [tp.partition for tp in parts]) for name in self._others
            }
            hints = consumer.committed(parts, timeout=10)
        except (KafkaException, _Restart) as err:
            # Raised here it would be lost in librdkafka: the loop raises it.
            self._failure = f"cannot take outbox partitions over: {err}"
            return
        for tp, hint in zip(parts, hints, strict=True):
            owned = _Owned(tp.partition)
            for name, (producers, at) in positions.items():
                owned.destinations[name] = _Destination(
                    name, producers[tp.partition], at.get(tp.partition, 0)
                )
            # Everything below the group's commit was settled; below a destination's position,
            # that destination has it. Whichever is further is where reading starts.
            start = max(hint.offset, 0)
            owned.next_offset = start
            tp.offset = start if start > 0 else OFFSET_BEGINNING
            self._owned[tp.partition] = owned
        consumer.assign(parts)
        log.info("forwarder: outbox partitions %s", sorted(self._owned))

    def _on_revoke(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        self._commit_hints(consumer)
        self._release_all()

    def _release_all(self) -> None:
        for owned in self._owned.values():
            for dest in owned.destinations.values():
                with contextlib.suppress(KafkaException):
                    dest.producer.flush(5)
        self._owned.clear()

    def _open(
        self, cluster: str, partitions: list[int]
    ) -> tuple[dict[int, Producer], dict[int, int]]:
        """Fences the previous forwarders on ``cluster``, *then* reads its positions."""
        client = self._clusters.settings(cluster)
        positions_topic = self._names.forward_positions_topic
        create_topic_if_missing(client, positions_topic, {"cleanup.policy": "compact"})
        producers: dict[int, Producer] = {}
        for partition in partitions:
            producer = Producer(
                {
                    **client,
                    "transactional.id": self._names.forward_transactional_id(partition),
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                    "message.timeout.ms": TRANSACTION_TIMEOUT_MS,
                    "logger": logging.getLogger("perdure.librdkafka"),
                }
            )
            producer.init_transactions(30)
            producers[partition] = producer
        return producers, _read_positions(client, positions_topic, self._names.forwarder_group)

    # -- forwarding -----------------------------------------------------------------------------

    def _forward(self, owned: _Owned, messages: list[Message]) -> None:
        """Forwards a batch of one outbox partition, a transaction per run of one cluster."""
        run: list[tuple[Message, str, list[tuple[str, str | bytes | None]]]] = []
        run_cluster = ""
        for msg in messages:
            offset = msg.offset() or 0
            try:
                cluster, topic, headers = forwarding.destination(own_headers(msg))
            except forwarding.OutboxFormatError as err:
                self._dead_letter(msg, "bad_format", str(err))
                continue
            dest = owned.destinations.get(cluster)
            if dest is None:
                self._dead_letter(msg, "unknown_cluster", f"no Kafka cluster {cluster!r} is known")
                continue
            if offset < dest.position:
                continue  # that destination has it already
            if run and cluster != run_cluster:
                self._commit_run(owned, owned.destinations[run_cluster], run)
                run = []
            run_cluster = cluster
            if not self._topic_exists(cluster, topic):
                self._dead_letter(msg, "unknown_topic", f"{cluster} has no topic {topic!r}")
                continue
            run.append((msg, topic, headers))
        if run:
            self._commit_run(owned, owned.destinations[run_cluster], run)
        owned.next_offset = (messages[-1].offset() or 0) + 1

    def _commit_run(
        self,
        owned: _Owned,
        dest: _Destination,
        run: list[tuple[Message, str, list[tuple[str, str | bytes | None]]]],
    ) -> None:
        producer = dest.producer
        last = run[-1][0].offset() or 0
        try:
            producer.begin_transaction()
            for msg, topic, headers in run:
                producer.produce(topic, value=msg.value(), key=msg.key(), headers=headers)
            producer.produce(
                self._names.forward_positions_topic,
                key=forwarding.position_key(owned.partition),
                value=forwarding.encode_position(last + 1),
            )
            if faults.armed("forward-before-commit"):
                producer.flush(10)  # the records on the broker, the commit not yet
                faults.reach("forward-before-commit")
            producer.commit_transaction(30)
        except (KafkaException, BufferError) as err:
            with contextlib.suppress(KafkaException):
                producer.abort_transaction(10)
            raise _Restart(f"a transaction to {dest.cluster} failed: {err}") from err
        dest.position = last + 1
        self._metrics.forwarded.labels(dest.cluster).inc(len(run))

    def _topic_exists(self, cluster: str, topic: str) -> bool:
        now = time.monotonic()
        if self._topics.get((cluster, topic), 0.0) > now:
            return True
        admin = self._admins.get(cluster)
        if admin is None:
            admin = self._admins[cluster] = AdminClient(dict(self._clusters.settings(cluster)))
        try:
            found = admin.list_topics(topic, timeout=10).topics.get(topic)
        except KafkaException as err:
            raise _Restart(f"{cluster} does not answer: {err}") from err
        if found is None or found.error is not None:
            return False
        self._topics[(cluster, topic)] = now + _TOPIC_CACHE_S
        return True

    def _dead_letter(self, msg: Message, reason: str, message: str) -> None:
        try:
            taken = self._dead_letters.send_now(msg, why_headers(msg, DeadLetter(reason, message)))
        except KafkaException as err:
            raise _Restart(f"the dead-letter topic does not answer: {err}") from err
        if not taken:
            raise _Restart("the dead-letter topic did not take a record")
        self._metrics.dead_lettered.labels(reason).inc()
        log.warning("forwarder: outbox record %d@%d: %s", msg.partition(), msg.offset(), message)

    def _commit_hints(self, consumer: Consumer) -> None:
        hints = [
            TopicPartition(self._names.outbox_topic, o.partition, o.next_offset)
            for o in self._owned.values()
            if o.next_offset > 0
        ]
        if hints:
            with contextlib.suppress(KafkaException):
                consumer.commit(offsets=hints, asynchronous=True)


def _read_positions(client: dict[str, str], topic: str, group: str) -> dict[int, int]:
    """The positions topic of one cluster, read to its end (read_committed)."""
    reader = Consumer(
        {
            **client,
            "group.id": f"{group}.positions",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    positions: dict[int, int] = {}
    try:
        reader.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        while True:
            if time.monotonic() > deadline:
                raise _Restart(f"{topic} could not be read to its end")
            msg = reader.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    return positions
                raise _Restart(f"cannot read {topic}: {err}")
            key = msg.key()
            value = msg.value()
            if key is not None and value is not None:
                positions[int(key)] = forwarding.decode_position(value)
    finally:
        reader.close()
