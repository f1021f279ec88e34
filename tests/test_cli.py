"""The ``perdure`` command: help, and clear errors for bad arguments and an unreachable broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import REPO, free_port


def perdure(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "perdure", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_help_lists_the_commands() -> None:
    out = perdure()
    assert out.returncode == 0
    for command in ("worker", "ingress", "dev"):
        assert command in out.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "expected MODULE:APP"),
        ("no.such.module:app", "cannot import 'no.such.module'"),
        ("examples.payments:nope", "has no attribute 'nope'"),
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
        "examples.payments:app",
        "--bootstrap",
        dead,
        "--state-dir",
        str(tmp_path),
        timeout=120,
    )
    assert out.returncode == 1
    assert f"cannot reach Kafka at {dead}" in out.stderr
