"""Publishing a worker's services to the service registry topic (compacted, keyed by name)."""

from __future__ import annotations

import json
import logging
import time

from confluent_kafka import KafkaError, Message, Producer

from perdure.process.kafka_settings import client_settings
from perdure.sdk import Endpoint

log = logging.getLogger("perdure.worker")


def publish_services(bootstrap: str, topic: str, endpoint: Endpoint, worker_id: str) -> None:
    """Writes one registry record per service of ``endpoint``; returns once Kafka has them all.

    Kafka may go down between the worker's topic check and here (a cluster restart): this waits
    for it as long as the producer keeps the records (``message.timeout.ms``, 5 minutes).

    Raises:
        RuntimeError: Kafka refused a record.
    """
    producer = Producer(client_settings(bootstrap, acks="all"))
    failed: list[str] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failed.append(err.str())

    for entry in endpoint.manifest():
        producer.produce(
            topic,
            key=entry["name"].encode(),
            value=json.dumps({**entry, "worker": worker_id}).encode(),
            on_delivery=delivered,
        )
    began = time.monotonic()
    while producer.flush(15) and not failed:
        log.warning(
            "publishing the service registry: Kafka has not taken it for %.0fs; waiting",
            time.monotonic() - began,
        )
    if failed:
        raise RuntimeError(f"could not publish the service registry: {failed[0]}")
    log.info("published services: %s", ", ".join(endpoint.services) or "none")
