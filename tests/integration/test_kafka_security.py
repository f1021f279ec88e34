"""Every process reaches a Kafka that wants SASL/SCRAM through ``PERDURE_KAFKA_CONFIG``.

The broker is one of this test's own (deploy/kafka/broker.sh with a SASL_PLAINTEXT listener;
its SCRAM users are made by Kafka's StorageTool ``--add-scram`` when it formats the storage),
so that the processes are pointed at the SASL port only. Right credentials: a worker, an ingress
and an admin run a call and list it. Wrong ones: readiness is a 503 that names the refusal.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster import Cluster, Proc, free_port, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.integration]

BROKER_SH = Path(__file__).resolve().parents[2] / "deploy/kafka/broker.sh"
USER, PASSWORD = "perdure-app", "s3cret-scram"


@pytest.fixture
def scram_broker(tmp_path: Path) -> Iterator[str]:
    """A broker whose only port the processes use wants SCRAM; yields that address."""
    sasl_port = free_port()
    env = {
        **os.environ,
        "KAFKA_DATA_DIR": str(tmp_path / "kafka"),
        "KAFKA_PORT": str(free_port()),
        "KAFKA_SASL_PORT": str(sasl_port),
        "KAFKA_SCRAM_USERS": f"{USER}:{PASSWORD}",
    }
    pidfile = tmp_path / "kafka" / "broker.pid"
    try:
        out = subprocess.run(
            ["bash", str(BROKER_SH), "start"], env=env, capture_output=True, text=True, timeout=180
        )
        assert out.returncode == 0, out.stderr
        yield f"127.0.0.1:{sasl_port}"
    finally:
        subprocess.run(["bash", str(BROKER_SH), "stop"], env=env, capture_output=True, timeout=60)
        if pidfile.exists():  # stop gave up: by its PID
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)


def config_file(tmp_path: Path, password: str) -> str:
    path = tmp_path / f"kafka-{password}.json"
    settings = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": USER,
        "sasl.password": password,
        "client.id": "perdure-scram-test",  # any librdkafka property passes through
    }
    path.write_text(json.dumps(settings))
    return f"@{path}"  # a file: the password stays out of process listings


def test_worker_ingress_and_admin_run_on_a_scram_listener(
    scram_broker: str, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    good = {"PERDURE_KAFKA_CONFIG": config_file(tmp_path, PASSWORD)}
    c = Cluster(scram_broker, unique_name("c"), tmp_path, "tests.apps.testapp:app", 2, good)
    try:
        c.start_worker("w")
        c.start_ingress()
        c.start_admin(port=free_port())
        r = httpx.post(f"{c.url}/tests/idempotency_keys", json=None, timeout=90)
        assert r.status_code == 200, r.text
        r = httpx.get(f"{c.admin_url}/invocations", params={"status": "completed"}, timeout=30)
        assert [i["handler"] for i in r.json()["invocations"]] == ["idempotency_keys"], r.text
        assert httpx.get(f"{c.url}/health/ready", timeout=5).status_code == 200

        # With a wrong password a process does not start: it stops with the refusal in words.
        bad_env = {**c.env, "PERDURE_KAFKA_CONFIG": config_file(tmp_path, "wrong-password")}
        port = free_port()
        for name, args in (
            ("bad-ingress", ["ingress", "--port", str(port), *c._common()]),
            ("bad-worker", ["worker", c.app, "--state-dir", str(tmp_path / "bad"), *c._common()]),
        ):
            proc = Proc(name, args, bad_env, tmp_path / f"{name}.log")
            c.procs.append(proc)
            wait_until(lambda p=proc: not p.alive(), 90, f"the {name} to give up")
            assert proc.popen.returncode != 0
            said = proc.log()
            assert f"cannot reach Kafka at {scram_broker}" in said, said[-3000:]
            assert "SASL authentication error" in said and "invalid credentials" in said, said
    finally:
        c.stop_all()


def test_a_reserved_or_malformed_setting_stops_the_process_with_its_reason(
    tmp_path: Path,
) -> None:
    for value, words in (
        ('{"enable.idempotence": false}', "set by Perdure itself"),
        ("{not json", "is not JSON"),
        (f"@{tmp_path / 'missing.json'}", "No such file"),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "perdure", "ingress", "--kafka-config", value],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=BROKER_SH.parents[2],
        )
        assert out.returncode != 0 and words in out.stderr, out.stderr
