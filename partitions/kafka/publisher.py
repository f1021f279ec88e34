"""Publisher: ``ctx.publish`` records and their journal entries, in one Kafka transaction.

Each log partition this worker owns has a transactional producer, ``transactional.id =
<cluster>.publish.<partition>``. A publish writes the user's record and the ``ProposeEntry``
that journals it (an ordinary log record, with the attempt's epoch) in one transaction, so for
``read_committed`` readers — the partition's own consumer among them — the record exists exactly
when the journal entry does:

- a crash before the commit: the transaction is aborted (by the next owner's
  ``init_transactions``, or at its timeout), neither is visible, the replay publishes again;
- after the commit: the entry is in the log and the replay returns it; nothing is published again.

Zombies: the next owner of the partition initialises the same ``transactional.id`` *before* it
announces its leadership (:meth:`Publisher.ready` gates the announcement). That fences the old
owner's producer and settles its open transaction first, so every committed publish sits in the
log before the new leader's announcement, under the epoch that was current there, and is
accepted. A fenced producer never publishes again; its partition publishes after its next
takeover.

Outages: a commit that fails past its deadline (the brokers gone for longer), or an abort that
fails, leaves the producer in a state it cannot leave. The partition's owner then makes a new
producer with the same ``transactional.id`` and initialises it, which aborts whatever the old
one left open: publishing goes on without waiting for a rebalance. It does so only while its
lease is current (partitions/lease.py), so a zombie never fences its successor's producer.

Publishes of one partition that arrive while a transaction commits go into the next one
together (group commit): a transaction costs a few round trips, and the partition's readers wait
for it (they read up to the last stable offset).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from perdure.engine import codec
from perdure.engine.cluster import ClusterNames
from perdure.engine.forwarding import outbox_headers
from perdure.engine.model import OutgoingRecord
from perdure.engine.records import Envelope
from perdure.partitions.errors import PublishError
from perdure.partitions.lease import Lease
from perdure.partitions.log import LOG_HEADERS
from perdure.process import faults
from perdure.process.kafka_clusters import DEFAULT, KafkaClusters, UnknownCluster
from perdure.process.kafka_settings import producer_settings
from perdure.sdk import InvocationAborted, TerminalError

log = logging.getLogger("perdure.publisher")

TRANSACTION_TIMEOUT_MS = 10_000
"""How long the broker lets a transaction stay open before aborting it: bounds how long a dead
owner's open transaction can hold up its partition's readers when nobody fences it. Below the
invoker's ``ack_timeout_s``, so a transaction whose outcome is unknown is settled before the
attempt is given up and replayed."""
_INIT_RETRY_S = 2.0
_COMMIT_DEADLINE_S = 30.0
_TOPIC_CACHE_S = 60.0
_FENCED = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)


class UnknownOutcome(Exception):
    """The commit may or may not have happened: only the log can tell."""


@dataclass
class _Publish:
    envelope: Envelope
    record: OutgoingRecord
    done: asyncio.Future[None]


@dataclass
class _Partition:
    """One log partition's transactional producer and the publishes waiting for it."""

    partition: int
    producer: Producer | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    dead: str = ""
    """Why this producer publishes no more: fenced (until the next takeover), or an error it
    cannot leave (until :meth:`Publisher._revive` made a new one)."""
    fenced: bool = False
    waiting: list[_Publish] = field(default_factory=list)
    committing: bool = False


class Publisher:
    """The transactional producers of the partitions this worker owns.

    :meth:`prepare`, :meth:`ready` and :meth:`release` run on the processor thread,
    :meth:`publish` on the invoker's event loop.
    """

    def __init__(
        self,
        bootstrap: str,
        names: ClusterNames,
        timeout_s: float = 10.0,
        clusters: KafkaClusters | None = None,
        lease: Lease | None = None,
    ) -> None:
        self._lease = lease if lease is not None else Lease.always()
        self._bootstrap = bootstrap
        self._names = names
        self._timeout_s = timeout_s
        self._clusters = clusters or KafkaClusters.from_env(bootstrap, "")
        self._metadata: dict[str, AdminClient] = {}
        self._committers: set[asyncio.Task[None]] = set()
        self._partitions: dict[int, _Partition] = {}
        self._topics: dict[tuple[str, str], float] = {}

    # -- ownership (processor thread) -----------------------------------------------------------

    def prepare(self, partition: int) -> None:
        """Starts fencing the partition's previous owner: makes its producer and initialises
        its transactions, in the background (retrying until it works or the partition goes)."""
        self.release(partition)
        part = self._partitions[partition] = _Partition(partition)
        threading.Thread(
            target=self._initialise, args=(part,), name=f"publisher-{partition}", daemon=True
        ).start()

    def ready(self, partition: int) -> bool:
        """Whether the previous owner's producer is fenced: the partition may announce."""
        part = self._partitions.get(partition)
        return part is not None and part.ready.is_set()

    def release(self, partition: int) -> None:
        """The partition is no longer this worker's: its producer stops."""
        part = self._partitions.pop(partition, None)
        if part is None:
            return
        part.released.set()
        part.dead = part.dead or "the partition was released"
        if part.producer is not None:
            # Off this thread: destroying a producer waits for its outstanding requests.
            threading.Thread(target=_close, args=(part,), daemon=True).start()

    def close(self) -> None:
        """Releases every partition."""
        for partition in list(self._partitions):
            self.release(partition)

    def _settings(self, part: _Partition) -> dict[str, object]:
        settings: dict[str, object] = dict(producer_settings(self._bootstrap))
        settings.update(
            {
                "transactional.id": self._names.publish_transactional_id(part.partition),
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "message.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "linger.ms": 1,
                "logger": logging.getLogger("perdure.librdkafka"),
            }
        )
        return settings

    def _initialise(self, part: _Partition, revive: bool = False) -> None:
        """Makes the partition's producer and initialises its transactions, retrying until it
        works or the partition goes. ``revive``: only while the lease is current."""
        settings = self._settings(part)
        while not part.released.is_set() and not part.fenced:
            if revive and not self._lease.current():
                part.released.wait(_INIT_RETRY_S / 4)
                continue
            started = time.monotonic()
            try:
                producer = Producer(settings)
                producer.init_transactions(self._timeout_s)
            except KafkaException as err:
                log.warning(
                    "partition %d: cannot initialise its publish transactions yet (%s); it %s",
                    part.partition,
                    err.args[0].str(),
                    "does not publish until it can" if revive else "does not lead until it can",
                )
                part.released.wait(_INIT_RETRY_S)
                continue
            part.producer = producer
            part.dead = ""
            part.ready.set()
            log.log(
                logging.INFO if revive else logging.DEBUG,
                "partition %d: publish producer %s in %.3fs",
                part.partition,
                "made anew" if revive else "ready",
                time.monotonic() - started,
            )
            return

    # -- publishing (event loop) ----------------------------------------------------------------

    async def publish(self, partition: int, envelope: Envelope, record: OutgoingRecord) -> None:
        """Publishes ``record`` with the log record ``envelope`` (a ``ProposeEntry``), both or
        neither.

        Raises:
            PublishError: nothing was published (the topic does not exist, Kafka refused the
                transaction): the attempt may run again.
            InvocationAborted: this worker is no longer the partition's owner.
            UnknownOutcome: the commit's outcome is not known; the entry's acknowledgement (or
                its absence) from the log tells.
        """
        part = self._partitions.get(partition)
        if part is None or part.fenced:
            raise InvocationAborted()  # another worker owns the partition
        if part.dead:
            raise PublishError(f"partition {partition} cannot publish: {part.dead}")
        if not part.ready.is_set() or part.producer is None:
            raise PublishError(f"partition {partition} cannot publish yet")
        await asyncio.to_thread(self._check_topic, record.cluster, record.topic)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        part.waiting.append(_Publish(envelope, record, done))
        if not part.committing:
            part.committing = True
            task = asyncio.get_running_loop().create_task(self._commit_waiting(part))
            self._committers.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._committers.discard)
        await done

    async def _commit_waiting(self, part: _Partition) -> None:
        try:
            while part.waiting:
                batch, part.waiting = part.waiting, []
                error: BaseException | None = None
                try:
                    await asyncio.to_thread(self._transaction, part, batch)
                except BaseException as err:  # handed to every publish of the batch
                    error = err
                for item in batch:
                    if item.done.done():
                        continue
                    if error is None:
                        item.done.set_result(None)
                    else:
                        item.done.set_exception(error)
                        item.done.exception()  # retrieved: its handler may have gone
        finally:
            part.committing = False

    def _check_topic(self, cluster: str, topic: str) -> None:
        """Refuses an unknown cluster or topic before the transaction: inside it, the record
        would wait ``message.timeout.ms`` for the topic, and the partition's readers with it.
        A topic of another cluster is checked there (the forwarder would find it missing)."""
        now = time.monotonic()
        if self._topics.get((cluster, topic), 0.0) > now:
            return
        try:
            settings = self._clusters.settings(cluster)
        except UnknownCluster as err:
            raise TerminalError(f"ctx.publish: {err}", 400) from err
        admin = self._metadata.get(cluster)
        if admin is None:
            admin = self._metadata[cluster] = AdminClient(dict(settings))
        try:
            metadata = admin.list_topics(topic, timeout=self._timeout_s).topics.get(topic)
        except KafkaException as err:
            raise PublishError(f"cannot reach Kafka to publish to {topic}: {err}") from err
        if metadata is None or metadata.error is not None:
            why = metadata.error.str() if metadata is not None and metadata.error else "unknown"
            raise PublishError(f"cannot publish to topic {topic!r}: {why}")
        self._topics[(cluster, topic)] = now + _TOPIC_CACHE_S

    def _transaction(self, part: _Partition, batch: list[_Publish]) -> None:
        """One transaction with every publish of ``batch`` (on a thread of its own)."""
        producer = part.producer
        if producer is None or part.dead:
            raise InvocationAborted()
        log_topic = self._names.log_topic
        try:
            producer.begin_transaction()
            for item in batch:
                r = item.record
                if r.cluster == DEFAULT:
                    producer.produce(r.topic, value=r.value, key=r.key, headers=list(r.headers))
                else:
                    # For the forwarder to send on: the outbox partition of this log partition.
                    producer.produce(
                        self._names.outbox_topic,
                        value=r.value,
                        key=r.key,
                        partition=part.partition,
                        headers=outbox_headers(r),
                    )
                producer.produce(
                    log_topic,
                    value=codec.encode_envelope(item.envelope),
                    partition=part.partition,
                    headers=LOG_HEADERS,
                )
        except (KafkaException, BufferError) as failed:
            if isinstance(failed, KafkaException) and failed.args[0].code() in _FENCED:
                part.fenced = True
                self._kill(part, failed)
                raise InvocationAborted() from failed
            self._abort(part, failed)
            raise PublishError(f"the publish transaction could not start: {failed}") from failed
        if faults.armed("publish-before-commit"):
            producer.flush(self._timeout_s)  # the records on the broker, the commit not yet
            faults.reach("publish-before-commit")
        deadline = time.monotonic() + _COMMIT_DEADLINE_S
        while True:
            try:
                producer.commit_transaction(self._timeout_s)
                return
            except KafkaException as exc:
                err = exc.args[0]
                if err.txn_requires_abort():
                    self._abort(part, exc)
                    raise PublishError(f"the publish transaction was aborted: {err.str()}") from exc
                if err.retriable() and time.monotonic() < deadline and not part.released.is_set():
                    continue
                if err.code() in _FENCED:
                    part.fenced = True
                    self._kill(part, exc)
                    raise InvocationAborted() from exc
                self._kill(part, exc)
                raise UnknownOutcome(err.str()) from exc

    def _abort(self, part: _Partition, why: BaseException) -> None:
        producer = part.producer
        if producer is None:
            return
        try:
            producer.abort_transaction(self._timeout_s)
        except KafkaException as err:
            # Not aborted here: the broker aborts it at its timeout, or the next owner does.
            self._kill(part, err)
            log.warning(
                "partition %d: publish transaction not aborted (%s): %s", part.partition, why, err
            )

    def _kill(self, part: _Partition, why: BaseException) -> None:
        """The producer publishes no more: a fenced one until the next takeover; any other is
        replaced at once (:meth:`_revive`)."""
        part.dead = str(why)
        if part.fenced or part.released.is_set():
            log.error(
                "partition %d: its publish producer stops (%s); the partition publishes again "
                "after its next takeover",
                part.partition,
                why,
            )
            return
        self._revive(part, why)

    def _revive(self, part: _Partition, why: BaseException) -> None:
        log.warning(
            "partition %d: its publish producer cannot go on (%s); making a new one",
            part.partition,
            why,
        )
        old, part.producer = part.producer, None
        if old is not None:
            threading.Thread(target=_destroy, args=(old,), daemon=True).start()
        threading.Thread(
            target=self._initialise,
            args=(part, True),
            name=f"publisher-{part.partition}",
            daemon=True,
        ).start()


def _destroy(producer: Producer) -> None:
    with contextlib.suppress(KafkaException):
        producer.flush(0)


def _close(part: _Partition) -> None:
    producer, part.producer = part.producer, None
    if producer is not None:
        with contextlib.suppress(KafkaException):  # a fenced producer has nothing to flush
            producer.flush(5)
