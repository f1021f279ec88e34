"""WorkerSettings: a worker's configuration, from flags or ``PERDURE_*`` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.cluster import ClusterNames


def _env(name: str, default: Any, cast: type) -> Any:
    raw = os.environ.get(f"PERDURE_{name.upper()}")
    return default if raw is None else cast(raw)


@dataclass(frozen=True)
class WorkerSettings:
    """How a partition worker runs.

    Every field reads ``PERDURE_<FIELD>`` (e.g. ``PERDURE_BOOTSTRAP``) when not given.
    """

    bootstrap: str = "127.0.0.1:9092"
    state_dir: Path = Path(".perdure/state")
    cluster: str = "perdure"
    partitions: int = 8
    session_timeout_ms: int = 6000
    retention_s: float = 24 * 3600
    purge_interval_s: float = 60
    redelivery_interval_s: float = 5
    suspend_after_s: float = 1.0
    ack_timeout_s: float = 30.0
    produce_timeout_s: float = 15.0
    metrics_port: int = 0
    worker_name: str = field(default_factory=lambda: f"worker-{os.getpid()}")

    @classmethod
    def from_env(cls, **given: Any) -> WorkerSettings:
        """Settings from explicit values, then ``PERDURE_*`` variables, then defaults."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if given.get(f.name) is not None:
                values[f.name] = given[f.name]
                continue
            cast = Path if f.name == "state_dir" else type(getattr(cls(), f.name))
            env = _env(f.name, None, cast)
            if env is not None:
                values[f.name] = env
        return cls(**values)

    @property
    def names(self) -> ClusterNames:
        """The cluster's topic and group names."""
        return ClusterNames(self.cluster)
