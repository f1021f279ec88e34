"""IngressSettings: the ingress's configuration, from flags or ``PERDURE_*`` variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

from engine.cluster import ClusterNames


@dataclass(frozen=True)
class IngressSettings:
    """How an ingress replica runs; every field reads ``PERDURE_<FIELD>`` when not given."""

    bootstrap: str = "127.0.0.1:9092"
    host: str = "127.0.0.1"
    port: int = 8080
    cluster: str = "perdure"
    partitions: int = 8
    max_body_bytes: int = 10 * 1024 * 1024
    reattach_interval_s: float = 3.0
    produce_timeout_s: float = 15.0

    @classmethod
    def from_env(cls, **given: Any) -> IngressSettings:
        """Settings from explicit values, then ``PERDURE_*`` variables, then defaults."""
        values: dict[str, Any] = {}
        defaults = cls()
        for f in fields(cls):
            if given.get(f.name) is not None:
                values[f.name] = given[f.name]
            elif (raw := os.environ.get(f"PERDURE_{f.name.upper()}")) is not None:
                values[f.name] = type(getattr(defaults, f.name))(raw)
        return cls(**values)

    @property
    def names(self) -> ClusterNames:
        """The cluster's topic names."""
        return ClusterNames(self.cluster)
