"""The ``perdure`` command: help, and clear errors for bad arguments and an unreachable broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import REPO, free_port


def perdure(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "perdure", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_help_lists_the_commands() -> None:
    out = perdure()
    assert out.returncode == 0
    for command in ("worker", "ingress", "admin", "dev"):
        assert command in out.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "expected MODULE:APP"),
        ("no.such.module:app", "cannot import 'no.such.module'"),
        ("perdure.examples.payments:nope", "has no attribute 'nope'"),
    ],
)
def test_bad_app_spec_is_a_clear_error(spec: str, message: str, tmp_path: Path) -> None:
    out = perdure("worker", spec, "--state-dir", str(tmp_path))
    assert out.returncode != 0
    assert message in out.stderr


def test_worker_with_no_broker_fails_with_a_clear_message(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    out = perdure(
        "worker",
        "perdure.examples.payments:app",
        "--bootstrap",
        dead,
        "--state-dir",
        str(tmp_path),
        timeout=60,
        env={"PERDURE_CONNECT_TIMEOUT_S": "3"},
    )
    assert out.returncode == 1
    assert f"cannot reach Kafka at {dead}" in out.stderr


def test_dev_refuses_a_port_that_is_taken() -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        out = perdure(
            "dev", "perdure.examples.payments:app", "--port", str(port), "--bootstrap", "x:1"
        )
    assert out.returncode == 1
    assert f"port {port} is in use" in out.stderr


def _children(pid: int) -> dict[int, str]:
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                out[int(stat.parent.name)] = cmdline
        except (OSError, IndexError, ValueError):
            continue
    return out


@pytest.mark.kafka
@pytest.mark.integration
def test_dev_reads_its_port_from_the_environment_and_restarts_a_dead_worker(
    kafka_bootstrap: str, unique_name: object, tmp_path: Path
) -> None:
    import os
    import signal

    import httpx

    from tests.cluster import wait_until

    port = free_port()
    log = (tmp_path / "dev.log").open("wb")
    env = {**os.environ, "PERDURE_PORT": str(port), "PERDURE_EXAMPLE_LEDGER": str(tmp_path / "l")}
    env["PERDURE_ADMIN_PORT"] = str(free_port())
    cluster = unique_name("dev")  # type: ignore[operator]
    args = [
        "dev",
        "perdure.examples.payments:app",
        "--bootstrap",
        kafka_bootstrap,
        "--cluster",
        cluster,
    ]
    args += ["--partitions", "2", "--state-dir", str(tmp_path / "state")]
    dev = subprocess.Popen(
        [sys.executable, "-m", "perdure", *args],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    order = {"orderId": "o-1", "userId": "u-1", "amount": 3}
    url = f"http://127.0.0.1:{port}/payments/process_payment"

    def paid() -> bool:
        try:
            return httpx.post(url, json=order, timeout=10).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(paid, 90, "perdure dev to serve on PERDURE_PORT")
        workers = [p for p, cmd in _children(dev.pid).items() if " worker " in cmd]
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGKILL)
        wait_until(
            lambda: (
                b"the worker exited with code -9; starting it again"
                in (tmp_path / "dev.log").read_bytes()
            ),
            30,
            "the supervisor to notice",
        )
        wait_until(paid, 90, "a call served by the restarted worker")
    finally:
        dev.send_signal(signal.SIGTERM)
        try:
            code = dev.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            raise
        log.close()
    assert code == 0, (tmp_path / "dev.log").read_text()[-2000:]
