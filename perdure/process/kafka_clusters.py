"""KafkaClusters: the Kafka clusters Perdure knows by name, for subscriptions and publishing.

``default`` is always the Kafka that Perdure runs on. Others come from ``PERDURE_KAFKA_CLUSTERS``:
a JSON object, or ``@path`` to a JSON file, mapping a name to its librdkafka settings, e.g.::

    {"events": {"bootstrap.servers": "kafka-1:9093", "security.protocol": "SASL_SSL",
                "sasl.mechanisms": "PLAIN", "sasl.username": "perdure", "sasl.password": "..."}}
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perdure.engine.errors import EngineError
from perdure.engine.model import DEFAULT_CLUSTER
from perdure.process import kafka_settings

DEFAULT = DEFAULT_CLUSTER


class UnknownCluster(EngineError):
    """A Kafka cluster name Perdure was not configured with."""


_NAME = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class KafkaClusters:
    """Named librdkafka client settings."""

    clusters: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_env(cls, default_bootstrap: str, raw: str | None = None) -> KafkaClusters:
        """``default`` at ``default_bootstrap``, plus those of ``PERDURE_KAFKA_CLUSTERS``.

        Raises:
            ValueError: the variable is not a JSON object of objects of settings.
        """
        text = os.environ.get("PERDURE_KAFKA_CLUSTERS", "") if raw is None else raw
        if text.startswith("@"):
            text = Path(text[1:]).read_text()
        given: Any = json.loads(text) if text.strip() else {}
        if not isinstance(given, dict):
            raise ValueError("PERDURE_KAFKA_CLUSTERS must be a JSON object: name -> settings")
        clusters: dict[str, dict[str, str]] = {}
        for name, settings in given.items():
            if not _NAME.fullmatch(name) or not isinstance(settings, dict):
                raise ValueError(f"PERDURE_KAFKA_CLUSTERS: bad entry {name!r}")
            if "bootstrap.servers" not in settings:
                raise ValueError(f"PERDURE_KAFKA_CLUSTERS: {name!r} has no bootstrap.servers")
            clusters[name] = {str(k): str(v) for k, v in settings.items()}
        # Perdure's own Kafka: its address, and the client settings every process uses for it.
        own = clusters.setdefault(DEFAULT, {})
        own.update({**kafka_settings.extra(), **own, "bootstrap.servers": default_bootstrap})
        return cls(clusters)

    def settings(self, name: str) -> dict[str, str]:
        """The client settings of cluster ``name``.

        Raises:
            UnknownCluster: the name is not a known cluster.
        """
        found = self.clusters.get(name)
        if found is None:
            known = ", ".join(sorted(self.clusters))
            raise UnknownCluster(f"unknown Kafka cluster {name!r}: known are {known}")
        return dict(found)
