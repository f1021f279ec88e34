"""The README as documentation: its first-hour commands, run as written, in a fresh clone.

``deploy/up.sh`` in a clone of the committed tree (its own venv, its own broker in
``.perdure/kafka``), then the README's payments block from another shell; then
``.venv/bin/perdure dev perdure.examples.signup:app`` reusing that broker, and the signup block
run as one shell script. Each command's output must match the ``# ...`` line under it (``...``
is a wildcard). Only the port differs from what a reader types: the test picks free ones.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.cluster import REPO, free_port, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.integration]


def readme_block(name: str) -> list[tuple[str, str]]:
    """The (command, expected output) pairs of the README block marked ``readme-test: name``."""
    text = (REPO / "README.md").read_text()
    found = re.search(rf"<!-- readme-test: {name}\b.*?-->\n```bash\n(.*?)```", text, re.S)
    assert found, f"no readme-test block {name!r}"
    pairs: list[tuple[str, str]] = []
    command = ""
    for line in found.group(1).splitlines():
        if line.startswith("# "):
            pairs.append((command, line[2:]))
            command = ""
        elif command.endswith("\\"):
            command = command[:-1] + " " + line.strip()
        elif command:
            pairs.append((command, ""))
            command = line
        else:
            command = line
    if command:
        pairs.append((command, ""))
    return pairs


def matches(expected: str, got: str) -> bool:
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, got.strip()) is not None


def run_block(name: str, cwd: Path, env: dict[str, str], port: int) -> None:
    """Runs the block's commands in order, each in a new shell that knows the variables set
    before it; a command whose output does not match yet is run again (a reader types slower
    than this test: a workflow may not have reached its next step)."""
    assignments: list[str] = []
    for cmd, expected in readme_block(name):
        cmd = cmd.replace("localhost:8080", f"localhost:{port}")
        if re.match(r"^[A-Za-z_]+=", cmd):
            assignments.append(cmd)
            continue
        script = "\n".join([*assignments, cmd])
        got = ""
        for _ in range(40):
            out = subprocess.run(
                ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
            )
            got = out.stdout
            if not expected or matches(expected, got):
                break
            time.sleep(0.5)
        assert not expected or matches(expected, got), (
            f"{cmd!r}\n  expected {expected!r}\n  got {got!r}"
        )


def start(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_the_first_hour_works_as_the_readme_says(tmp_path: Path) -> None:
    clone = tmp_path / "perdure"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    port = free_port()
    # A new shell: nothing of this test run's Perdure or Kafka settings, no venv on PATH.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PERDURE_", "KAFKA_", "VIRTUAL_ENV", "PYTHONPATH"))
    }
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p)
    env["KAFKA_PORT"] = str(free_port())  # the reader's 9092 may be taken on a shared machine
    env["PERDURE_PORT"] = str(port)
    env["PERDURE_ADMIN_PORT"] = str(free_port())
    health = f"http://127.0.0.1:{port}/health"

    def up() -> bool:
        try:
            return httpx.get(health, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    up_sh = start(["bash", "deploy/up.sh"], clone, env, tmp_path / "up.log")
    dev = None
    pid_file = clone / ".perdure/kafka/broker.pid"
    try:
        wait_until(up, 420, "deploy/up.sh to serve (a fresh venv installs first)")
        time.sleep(1)  # the worker leads its partitions right after the ingress answers
        run_block("payments", clone, env, port)
        broker_pid = pid_file.read_text()
        stop(up_sh)
        dev = start(
            [".venv/bin/perdure", "dev", "perdure.examples.signup:app"],
            clone,
            env,
            tmp_path / "dev.log",
        )
        wait_until(up, 120, "perdure dev to serve, reusing up.sh's broker")
        run_block("signup", clone, env, port)
        assert pid_file.read_text() == broker_pid, "one broker"
    finally:
        stop(up_sh)
        if dev is not None:
            stop(dev)
        subprocess.run(
            ["bash", "deploy/kafka/broker.sh", "stop"],
            cwd=clone,
            env={**env, "KAFKA_DATA_DIR": ".perdure/kafka"},
            capture_output=True,
            timeout=120,
        )
        # And by its PID, should the script not have recognised it (it once did not).
        if pid_file.exists() and pid_file.read_text().strip().isdigit():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
