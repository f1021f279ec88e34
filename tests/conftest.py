"""Shared fixtures: one real Kafka broker per test run, and unique names per test.

The broker comes from ``deploy/kafka/broker.sh``. Set ``PERDURE_TEST_BOOTSTRAP=HOST:PORT`` to
reuse a broker that is already running (``deploy/check.sh`` does this); otherwise the first test
that needs Kafka starts one on a free port with its data in a temporary folder, and the run stops
it at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster
from tests.kafka_cluster import KafkaCluster

REPO = Path(__file__).resolve().parent.parent

# The tests' workers are single processes unless a test says otherwise: a test that stops a
# worker with SIGSTOP, or reads its PID's log, means that one process
# (tests/integration/test_worker_pool.py tests pools).
os.environ.setdefault("PERDURE_WORKER_PROCESSES", "1")
BROKER_SH = REPO / "deploy" / "kafka" / "broker.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_BROKER_ENV: dict[str, str] = {}
"""How to reach the test broker with ``broker.sh`` (its port and data folder), if known."""


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The bootstrap address of a real Apache Kafka broker."""
    given = os.environ.get("PERDURE_TEST_BOOTSTRAP")
    if given:
        # deploy/check.sh exports the broker's port and data folder along with its address.
        if os.environ.get("KAFKA_DATA_DIR") and os.environ.get("KAFKA_PORT"):
            _BROKER_ENV.update(
                KAFKA_DATA_DIR=os.environ["KAFKA_DATA_DIR"], KAFKA_PORT=os.environ["KAFKA_PORT"]
            )
        yield given
        return
    data_dir = tempfile.mkdtemp(prefix="perdure-test-kafka-")
    env = dict(os.environ, KAFKA_PORT=str(_free_port()), KAFKA_DATA_DIR=data_dir)
    _BROKER_ENV.update(KAFKA_DATA_DIR=data_dir, KAFKA_PORT=env["KAFKA_PORT"])
    try:
        out = subprocess.run(
            ["bash", str(BROKER_SH), "start"],
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if out.returncode != 0:
            pytest.fail(f"could not start the Kafka broker:\n{out.stderr}", pytrace=False)
        yield out.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(BROKER_SH), "stop"], env=env, check=False, timeout=120)
        shutil.rmtree(data_dir, ignore_errors=True)


_KAFKA_CLUSTER: list[KafkaCluster] = []
"""The three-broker cluster, once a test asked for it (and until the last such test ended)."""


@pytest.fixture
def kafka_cluster() -> KafkaCluster:
    """Three real brokers (``deploy/kafka/cluster.sh``) on their own ports, for the tests of
    replication and of the chaos suite. Started on first use; every node runs again when a test
    using it ends. Those tests run first (marked ``cluster``) and the cluster stops after the
    last of them: three idle JVMs would slow every test after them on a 2-core machine."""
    if not _KAFKA_CLUSTER:
        cluster = KafkaCluster()
        _KAFKA_CLUSTER.append(cluster)
        try:
            cluster.start()
        except RuntimeError as err:
            pytest.fail(f"could not start the three-broker cluster:\n{err}", pytrace=False)
    return _KAFKA_CLUSTER[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on the three-broker cluster first, in their order; then the rest."""
    items.sort(key=lambda item: item.get_closest_marker("cluster") is None)


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if not _KAFKA_CLUSTER:
        return
    if nextitem is None or nextitem.get_closest_marker("cluster") is None:
        _KAFKA_CLUSTER.pop().stop()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Makes names (topics, groups, transactional ids, clusters) that no other test uses."""
    base = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:40]
    run = uuid.uuid4().hex[:8]

    def make(kind: str) -> str:
        return f"t-{base}-{kind}-{run}"

    return make


@pytest.fixture
def cluster_factory(
    kafka_bootstrap: str, tmp_path: Path, unique_name: Callable[[str], str]
) -> Iterator[Callable[..., Cluster]]:
    """Makes :class:`tests.cluster.Cluster` objects; every process they start is stopped."""
    made: list[Cluster] = []

    def make(**kwargs: object) -> Cluster:
        c = Cluster(kafka_bootstrap, unique_name("c"), tmp_path, **kwargs)  # type: ignore[arg-type]
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.stop_all()


class Broker:
    """The test broker as a process: tests kill it (``kill -9``) and start it again."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {**os.environ, **env}
        self.pidfile = Path(env["KAFKA_DATA_DIR"]) / "broker.pid"

    def kill9(self) -> None:
        pid = int(self.pidfile.read_text().strip())
        os.kill(pid, 9)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        raise AssertionError(f"broker {pid} survived kill -9")

    def start(self) -> None:
        out = subprocess.run(
            ["bash", str(BROKER_SH), "start"],
            env=self.env,
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, f"broker did not come back:\n{out.stderr}"


@pytest.fixture
def broker(kafka_bootstrap: str) -> Iterator[Broker]:
    """Control of the test broker's process; it is running again when the test ends."""
    if not _BROKER_ENV:
        pytest.skip("the broker's data folder is unknown (PERDURE_TEST_BOOTSTRAP without it)")
    b = Broker(_BROKER_ENV)
    try:
        yield b
    finally:
        b.start()  # prints the address if it runs already
