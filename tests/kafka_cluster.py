"""A three-node Kafka cluster from ``deploy/kafka/cluster.sh``, for tests and the chaos suite.

Every broker is a real process; :meth:`KafkaCluster.kill` is a ``kill -9`` of one of them. The
cluster lives in its own folder and on its own ports, beside the single test broker.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SH = REPO / "deploy" / "kafka" / "cluster.sh"
NODES = (1, 2, 3)


def _free_port_run(n: int) -> int:
    """The first of ``n`` consecutive free ports on 127.0.0.1, below the kernel's ephemeral
    range: a broker that is down must find its port free when it comes back, and a port in
    that range can be taken meanwhile by any client's outgoing connection (or by a client
    reconnecting to it: Linux's TCP self-connect)."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(max(1024, low // 2), low - n)
        try:
            for port in range(base, base + n):
                with socket.socket() as t:
                    t.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {n} consecutive free ports below {low}")


class KafkaCluster:
    """Three KRaft brokers on 127.0.0.1, started by the project's script."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        self._owned_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="perdure-kafka-cluster-"))
        self.port = port or _free_port_run(6)  # three client, three controller ports
        self.env = {
            **os.environ,
            "KAFKA_DATA_DIR": str(self.data_dir),
            "KAFKA_PORT": str(self.port),
            "KAFKA_HEAP_OPTS": os.environ.get("KAFKA_CLUSTER_HEAP_OPTS", "-Xms128m -Xmx512m"),
        }
        self.bootstrap = ",".join(f"127.0.0.1:{self.port + i}" for i in range(3))

    def _script(self, *args: str, timeout: float = 300) -> str:
        out = subprocess.run(
            ["bash", str(CLUSTER_SH), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"cluster.sh {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
        return out.stdout

    def start(self) -> str:
        """Starts the nodes that are down; returns the bootstrap list."""
        failures = []
        # A fresh JVM now and then dies before it logs anything, or a node misses the
        # quorum's first election on a loaded machine: up to two more tries, on the same data.
        for _ in range(3):
            try:
                last = self._script("start").strip().splitlines()[-1]
            except RuntimeError as err:
                failures.append(str(err)[-3000:])
                self._script("stop")
                continue
            assert last == self.bootstrap, last
            return last
        raise RuntimeError("\n---\n".join(failures))

    def stop(self) -> None:
        """Stops every node; removes the data if this object made the folder."""
        subprocess.run(
            ["bash", str(CLUSTER_SH), "stop"],
            env=self.env,
            timeout=180,
            check=False,
            capture_output=True,
        )
        if self._owned_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self, node: int) -> None:
        """``kill -9`` of node ``node`` (1-3)."""
        self._script("kill", str(node))

    def restart(self, node: int) -> None:
        """Starts node ``node`` again on its data and waits until it answers (three tries, as
        :meth:`start`: a JVM's failed start is Kafka's trouble, not what a test is about)."""
        for attempt in range(3):
            try:
                self._script("restart", str(node))
                return
            except RuntimeError:
                if attempt == 2:
                    raise
                time.sleep(2)

    def pid(self, node: int) -> int | None:
        path = self.data_dir / f"node-{node}" / "broker.pid"
        try:
            pid = int(path.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def signal(self, node: int, sig: signal.Signals) -> None:
        pid = self.pid(node)
        if pid is not None:
            os.kill(pid, sig)

    def running(self) -> list[int]:
        return [n for n in NODES if self.pid(n) is not None]

    def leader_of_most(self, topic: str, timeout: float = 10) -> int:
        """The node that leads the most partitions of ``topic`` now."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        md = admin.list_topics(topic, timeout=timeout).topics[topic]
        counts: dict[int, int] = {}
        for p in md.partitions.values():
            if p.leader >= 0:
                counts[p.leader] = counts.get(p.leader, 0) + 1
        if not counts:
            return 1
        return max(counts, key=lambda n: (counts[n], -n))

    def wait_all_in_sync(self, topic: str, timeout: float = 60) -> None:
        """Waits until every partition of ``topic`` has all three replicas in sync."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.monotonic() + timeout
        while True:
            try:
                md = admin.list_topics(topic, timeout=5).topics[topic]
                if md.partitions and all(len(p.isrs) == 3 for p in md.partitions.values()):
                    return
            except Exception:  # electing a leader: ask again
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: replicas not all in sync after {timeout}s")
            time.sleep(0.5)
