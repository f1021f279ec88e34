"""deploy/kafka/cluster.sh: three brokers that die and come back one at a time; bad input fails.

The cluster itself is the session's ``kafka_cluster`` (tests/conftest.py), started by this script.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.kafka_cluster import CLUSTER_SH, KafkaCluster


def run_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER_SH), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bad_input_is_a_clear_error_and_status_says_stopped(tmp_path: Path) -> None:
    env = {"KAFKA_DATA_DIR": str(tmp_path / "c"), "KAFKA_PORT": "39990"}
    for args, words in (
        (("kill", "4"), "name a node: 1, 2 or 3"),
        (("restart",), "name a node"),
        (("frobnicate",), "usage:"),
    ):
        out = run_script(env, *args)
        assert out.returncode != 0 and words in out.stderr, (args, out.stderr)
    status = run_script(env, "status")
    assert status.returncode == 3
    assert status.stdout.count("stopped") == 3
    assert status.stdout.strip().splitlines()[-1] == (
        "127.0.0.1:39990,127.0.0.1:39991,127.0.0.1:39992"
    )


@pytest.mark.kafka
@pytest.mark.cluster
@pytest.mark.fault
def test_acknowledged_records_survive_the_kill_of_their_leader(kafka_cluster: KafkaCluster) -> None:
    topic = f"t-survive-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap})
    spec = NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})
    admin.create_topics([spec])[topic].result(30)
    kafka_cluster.wait_all_in_sync(topic)
    producer = Producer(
        {"bootstrap.servers": kafka_cluster.bootstrap, "acks": "all", "enable.idempotence": True}
    )
    for i in range(100):
        producer.produce(topic, str(i).encode())
    assert producer.flush(30) == 0
    leader = kafka_cluster.leader_of_most(topic)
    kafka_cluster.kill(leader)
    try:
        assert kafka_cluster.pid(leader) is None
        for i in range(100, 200):  # a new leader takes writes while one node is down
            producer.produce(topic, str(i).encode())
        assert producer.flush(60) == 0
        consumer = Consumer(
            {
                "bootstrap.servers": kafka_cluster.bootstrap,
                "group.id": topic,
                "enable.auto.commit": False,
            }
        )
        consumer.assign([TopicPartition(topic, 0, 0)])
        seen: list[int] = []
        deadline = time.monotonic() + 60
        while len(seen) < 200 and time.monotonic() < deadline:
            msg = consumer.poll(1)
            if msg is not None and msg.error() is None:
                seen.append(int(msg.value()))
        consumer.close()
        assert seen == list(range(200))
    finally:
        kafka_cluster.restart(leader)
    assert kafka_cluster.running() == [1, 2, 3]
    kafka_cluster.wait_all_in_sync(topic)
