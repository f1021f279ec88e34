"""The README's Python examples, run as written: "Testing your handlers" with pytest, and
"Calling from Python" against ``perdure dev --embedded perdure.examples.everything:app`` (no
broker).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import REPO
from tests.partitions.test_embedded import Embedded


def python_block(name: str) -> str:
    text = (REPO / "README.md").read_text()
    found = re.search(rf"<!-- readme-test: {name}\b.*?-->\n```python\n(.*?)```", text, re.S)
    assert found, f"no readme-test python block {name!r}"
    return found.group(1)


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PERDURE_EXAMPLE_LEDGER": str(tmp_path / "ledger.txt"),
        "PERDURE_EXAMPLE_MAILBOX": str(tmp_path / "mailbox"),
    }


def _run(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_testing_example_passes_under_pytest(tmp_path: Path) -> None:
    (tmp_path / "test_readme_testing.py").write_text(python_block("python-test"))
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = strict\n")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-c", str(tmp_path / "pytest.ini"), str(tmp_path / "test_readme_testing.py")]
    out = _run(command, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "5 passed" in out.stdout, out.stdout


@pytest.mark.fault
def test_the_client_example_runs_against_the_embedded_ingress(tmp_path: Path) -> None:
    embedded = Embedded(tmp_path, "perdure.examples.everything:app")
    try:
        embedded.start()
        code = python_block("python-client").replace("localhost:8080", f"127.0.0.1:{embedded.port}")
        out = _run([sys.executable, "-c", code], tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr + embedded.log()
    finally:
        embedded.stop()
