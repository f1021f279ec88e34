"""PooledMetrics: one ``/metrics`` and one ``/health`` for the members of a worker pool.

A scrape asks every member (in parallel, each within ``timeout_s``) and answers their metrics
as one exposition, every sample labelled with its ``member``, so dashboards that sum over
workers sum over members too. A member that does not answer (starting, or restarting) is left
out of that scrape. ``/health/ready`` is ready when every member answers ready; ``/health/live``
while the pool runs.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from perdure.partitions.metrics import serve_with_health

MEMBER_LABEL = "member"


class _Merged:
    """The members' families, as ``generate_latest`` reads a registry."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


class PooledMetrics:
    """Serves the merged metrics and health of members listening on ``ports`` (member index
    to port, on 127.0.0.1).

    Args:
        ports: each member's metrics port.
        timeout_s: how long a scrape waits for one member.
    """

    def __init__(self, ports: dict[int, int], timeout_s: float = 3.0) -> None:
        self.ports = ports
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(ports)), thread_name_prefix="scrape")

    def _get(self, port: int, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except (OSError, ValueError) as err:
            return 0, str(err).encode()

    def _ask(self, path: str) -> dict[int, tuple[int, bytes]]:
        items = list(self.ports.items())
        answers = self._pool.map(lambda item: self._get(item[1], path), items)
        return {index: answer for (index, _), answer in zip(items, answers, strict=True)}

    def metrics(self) -> bytes:
        """Every answering member's metrics, labelled by member."""
        families: dict[str, Metric] = {}
        for index, (status, body) in sorted(self._ask("/metrics").items()):
            if status != 200:
                continue
            for family in text_string_to_metric_families(body.decode()):
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                for sample in family.samples:
                    labels = {**sample.labels, MEMBER_LABEL: str(index)}
                    merged.samples.append(sample._replace(labels=labels))
        return generate_latest(_Merged(list(families.values())))

    def ready(self) -> str | None:
        """Why the pool is not ready (None: every member is)."""
        problems = []
        for index, (status, body) in sorted(self._ask("/health/ready").items()):
            if status == 200:
                continue
            why = body.decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                why = str(json.loads(why).get("message", why))
            problems.append(f"member {index}: {why if status else 'not answering: ' + why}")
        return "; ".join(problems) or None

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serves ``/metrics`` and ``/health/*`` on ``port`` from a thread."""

        def metrics(_environ: dict[str, Any], respond: Callable[..., Any]) -> Iterable[bytes]:
            respond("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [self.metrics()]

        serve_with_health(metrics, port, host, self.ready, thread_name="pool-metrics")
