"""deploy/kafka/broker.sh: a killed run's leftovers restart cleanly; bad input is a clear error."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BROKER_SH, _free_port

pytestmark = pytest.mark.kafka


def run_script(
    env: dict[str, str], *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BROKER_SH), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def broker_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {"KAFKA_PORT": str(_free_port()), "KAFKA_DATA_DIR": str(tmp_path / "kafka")}
    yield env
    run_script(env, "stop", timeout=60)


def test_start_twice_prints_address_stale_pid_restarts_cleanly(broker_env: dict[str, str]) -> None:
    # An id that starts with "-" (1 in 64 random ones did) must not read as an option.
    first = run_script({**broker_env, "KAFKA_CLUSTER_ID": "-dashFirstClusterId0Aw"}, "start")
    assert first.returncode == 0, first.stderr
    assert "cluster id -dashFirstClusterId0Aw" in first.stderr
    address = f"127.0.0.1:{broker_env['KAFKA_PORT']}"
    assert first.stdout.strip().splitlines()[-1] == address
    pid = int(Path(broker_env["KAFKA_DATA_DIR"], "broker.pid").read_text())

    again = run_script(broker_env, "start")
    assert again.returncode == 0
    assert again.stdout.strip() == address
    assert int(Path(broker_env["KAFKA_DATA_DIR"], "broker.pid").read_text()) == pid

    status = run_script(broker_env, "status")
    assert status.returncode == 0 and str(pid) in status.stdout
    # The data folder alone names the broker (issue 10): its port is remembered there.
    only_dir = {"KAFKA_DATA_DIR": broker_env["KAFKA_DATA_DIR"]}
    env_without_port = {k: v for k, v in os.environ.items() if k != "KAFKA_PORT"}
    by_dir = subprocess.run(
        ["bash", str(BROKER_SH), "status"],
        env={**env_without_port, **only_dir},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert by_dir.returncode == 0 and address in by_dir.stdout, by_dir.stdout + by_dir.stderr

    # A run killed with -9 leaves a PID file behind whose process is gone.
    os.kill(pid, 9)
    restarted = run_script(broker_env, "start")
    assert restarted.returncode == 0, restarted.stderr
    assert "stale PID file" in restarted.stderr
    assert restarted.stdout.strip().splitlines()[-1] == address
    assert int(Path(broker_env["KAFKA_DATA_DIR"], "broker.pid").read_text()) != pid

    stopped = run_script(broker_env, "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert run_script(broker_env, "status").returncode == 3


def test_port_in_use_is_a_clear_error(broker_env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(broker_env["KAFKA_PORT"])))
        squatter.listen()
        out = run_script(broker_env, "start", timeout=60)
    assert out.returncode != 0
    assert f"port {broker_env['KAFKA_PORT']}" in out.stderr and "in use" in out.stderr


def test_pid_file_of_an_unrelated_process_is_not_trusted(broker_env: dict[str, str]) -> None:
    data = Path(broker_env["KAFKA_DATA_DIR"])
    data.mkdir(parents=True)
    (data / "broker.pid").write_text(str(os.getpid()))  # alive, but not a broker
    assert run_script(broker_env, "status").returncode == 3
    out = run_script(broker_env, "stop", timeout=60)
    assert "stale" in out.stdout
    assert not (data / "broker.pid").exists()


def test_missing_java_is_a_clear_error(broker_env: dict[str, str]) -> None:
    out = run_script({**broker_env, "JAVA": "/nonexistent/java"}, "start", timeout=60)
    assert out.returncode != 0
    assert "Java is not installed" in out.stderr


def test_broker_that_does_not_come_up_in_time_shows_its_log(broker_env: dict[str, str]) -> None:
    out = run_script({**broker_env, "KAFKA_START_TIMEOUT": "1"}, "start", timeout=120)
    assert out.returncode != 0
    assert "did not answer within 1s" in out.stderr
    assert "--- last lines of" in out.stderr
    assert run_script(broker_env, "status").returncode == 3, "a timed-out broker must be stopped"


def test_no_network_for_the_jars_is_a_clear_error(
    tmp_path: Path, broker_env: dict[str, str]
) -> None:
    # A Maven mirror on a closed local port stands for "Maven Central is unreachable".
    settings = tmp_path / "settings.xml"
    settings.write_text(
        "<settings><mirrors><mirror><id>nowhere</id><mirrorOf>*</mirrorOf>"
        "<url>http://127.0.0.1:9/</url></mirror></mirrors></settings>"
    )
    env = {
        **broker_env,
        "KAFKA_CACHE_DIR": str(tmp_path / "cache"),
        "KAFKA_MVN_ARGS": f"-s {settings} -Dmaven.repo.local={tmp_path / 'repo'}",
    }
    out = run_script(env, "start", timeout=180)
    assert out.returncode != 0
    assert "could not fetch the Kafka jars" in out.stderr
    assert not (tmp_path / "cache" / "libs").exists(), "a failed fetch must not look complete"
