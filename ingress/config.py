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
    """The first pause before a waiting request asks its partition again (a lost answer)."""
    reattach_max_interval_s: float = 60.0
    """The pause doubles after each ask, up to this: a day-long wait writes ~1,500 records."""
    produce_timeout_s: float = 15.0
    access_log: bool = False
    """Log every request (method, path, status) on the ingress's output."""
    segment_bytes: int = 16 * 1024 * 1024
    """Segment size of the log and backups topics (when this replica creates them)."""
    keep_alive_s: int = 65
    """How long an idle keep-alive connection stays open. Longer than the clients' own idle
    expiry (httpx: 5 s, load balancers: 60 s), so the client closes an idle connection first:
    when the server does at the same moment, the request the client sends on it is lost to a
    reset (uvicorn's default is 5 s, the same as httpx's)."""
    event_loop: str = "auto"
    """``uvloop`` (what ``auto`` picks where it is installed) or ``asyncio``: passed to
    uvicorn, which also parses HTTP with ``httptools`` where it is installed."""
    call_timeout_s: float = 0.0
    """How long a call waits for its result before answering 202 with the invocation id (to
    attach to later); 0 waits as long as the invocation runs."""

    @classmethod
    def from_env(cls, **given: Any) -> IngressSettings:
        """Settings from explicit values, then ``PERDURE_*`` variables, then defaults."""
        values: dict[str, Any] = {}
        defaults = cls()
        for f in fields(cls):
            if given.get(f.name) is not None:
                values[f.name] = given[f.name]
            elif (raw := os.environ.get(f"PERDURE_{f.name.upper()}")) is not None:
                default = getattr(defaults, f.name)
                if isinstance(default, bool):
                    values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
                else:
                    values[f.name] = type(default)(raw)
        return cls(**values)

    @property
    def names(self) -> ClusterNames:
        """The cluster's topic names."""
        return ClusterNames(self.cluster)
