"""Whether Kafka answers, for readiness and for failing calls fast while it does not.

A :class:`KafkaProbe` asks the cluster to describe itself every :data:`INTERVAL_S` (a small
request: no topic metadata). Kafka counts as unreachable once no probe succeeded for
:data:`GRACE_S`: then readiness is a 503 that says so in words, and a call is refused at once
with that 503 instead of waiting for the producer's timeout (nothing was logged for it, so
nothing is lost; the client may retry). A short blip inside the grace is ridden out by the
producer's own retries.
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from perdure.process.client_logs import CLIENT_LOGGER, ConnectionTrouble
from perdure.process.kafka_settings import client_settings

INTERVAL_S = 2.0
GRACE_S = 6.0


class KafkaProbe:
    """Probes Kafka at ``bootstrap`` from a thread of its own until :meth:`close`."""

    def __init__(
        self, bootstrap: str, interval_s: float = INTERVAL_S, grace_s: float = GRACE_S
    ) -> None:
        self.bootstrap = bootstrap
        self.interval_s = interval_s
        self.grace_s = grace_s
        self._trouble = ConnectionTrouble()
        config = client_settings(bootstrap, logger=CLIENT_LOGGER, error_cb=self._trouble)
        self._ok_at = time.monotonic()
        self._error = ""
        self._admin = AdminClient(config)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._admin.describe_cluster(request_timeout=self.interval_s).result()
                self._ok_at = time.monotonic()
                self._error = self._trouble.last = ""
            except KafkaException as err:
                self._error = self._trouble.explain(err, self._admin)
            self._stop.wait(self.interval_s)

    def unreachable(self) -> str | None:
        """Why Kafka counts as unreachable now, in words; None while it answers."""
        silent = time.monotonic() - self._ok_at
        if silent < self.grace_s:
            return None
        why = f": {self._error}" if self._error else ""
        return f"Kafka at {self.bootstrap} cannot be reached (no answer for {silent:.0f} s{why})"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
