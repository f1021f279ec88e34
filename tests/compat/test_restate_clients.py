"""Restate's official clients against Perdure's ingress, unchanged (issue 10).

TypeScript ``@restatedev/restate-sdk-clients`` 1.17.2 (npm) and Python ``restate-sdk[client]``
1.3.0 (PyPI) are installed into a throw-away folder for the run; each drives a real cluster and
reports every case. A registry that cannot be reached fails the test: these claims need the
real clients.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import Cluster, serving

pytestmark = [pytest.mark.kafka, pytest.mark.integration, pytest.mark.compat]

HERE = Path(__file__).resolve().parent
TS_CLIENT = "@restatedev/restate-sdk-clients@1.17.2"
PY_CLIENT = "restate-sdk[client]==1.3.0"


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> None:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    )


@pytest.fixture(scope="session")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with both clients installed."""
    where = tmp_path_factory.mktemp("restate-clients")
    (where / "package.json").write_text('{"name": "perdure-compat", "type": "module"}')
    _run(["npm", "install", "--no-audit", "--no-fund", "--silent", TS_CLIENT], where)
    _run([sys.executable, "-m", "venv", str(where / "py")], where)
    _run([str(where / "py" / "bin" / "pip"), "install", "-q", PY_CLIENT], where)
    return where


@pytest.fixture
def cluster(cluster_factory: Callable[..., Cluster]) -> Cluster:
    return serving(cluster_factory, app="tests.apps.testapp:app", partitions=2)


def _results(cmd: list[str], cwd: Path) -> dict[str, Any]:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=150)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {line["case"]: line for line in lines}


def _ok(results: dict[str, Any], case: str) -> Any:
    line = results[case]
    assert "error" not in line, f"{case}: {line['error']}\n(all: {results})"
    return line["ok"]


def test_the_typescript_client(clients: Path, cluster: Cluster) -> None:
    mailbox = cluster.workdir / "mailbox"
    script = clients / "ts_client.mjs"
    script.write_text((HERE / "ts_client.mjs").read_text())
    r = _results(["node", str(script), cluster.url, str(cluster.ledger), str(mailbox)], clients)
    assert _ok(r, "service_call") == {"a": 1}
    assert _ok(r, "object_key_with_slash") == 2, "a key with / and a space, URL-encoded"
    assert _ok(r, "object_empty_key") == 3
    assert _ok(r, "send_with_delay_and_result") == "later"
    assert _ok(r, "idempotency_key") == ["first", "first"]
    assert _ok(r, "generic_call_and_send") == ["g", True]
    assert _ok(r, "awakeable_resolve") == "resolved"
    assert _ok(r, "workflow") == [True, "waiting for verification", True]
    # As Restate 1.7.12 answers it (checked against the real server): the workflow id is the key.
    refused = _ok(r, "workflow_submit_with_idempotency_key")
    assert "400" in refused and "cannot use the idempotency key with workflow handlers" in refused
    assert _ok(r, "scoped_call") == "scoped"
    assert _ok(r, "scoped_state") == [7, 0], "a scope is a namespace of keys and their state"


def test_the_python_client(clients: Path, cluster: Cluster) -> None:
    mailbox = cluster.workdir / "mailbox"
    python = str(clients / "py" / "bin" / "python")
    cmd = [python, str(HERE / "py_client.py"), cluster.url, str(cluster.ledger), str(mailbox)]
    env_free = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        cmd, cwd=clients, capture_output=True, text=True, timeout=150, env=env_free
    )
    assert out.returncode == 0, out.stderr[-3000:]
    r = {
        line["case"]: line
        for line in (json.loads(x) for x in out.stdout.splitlines() if x.startswith("{"))
    }
    assert _ok(r, "service_call") == {"a": 1}
    assert _ok(r, "object_key") == 2
    assert _ok(r, "object_empty_key") == 3
    assert _ok(r, "send_with_delay") is True, "?delay=300, a bare number of milliseconds"
    assert _ok(r, "idempotency_key") == ["first", "first"]
    assert _ok(r, "awakeable_resolve") == 202
    assert _ok(r, "scoped_call") == "scoped"
