"""The benchmark harness keeps working: a run of a few seconds against Perdure and its Restate
baseline (installed on first use), no timing assertions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import REPO

pytestmark = [pytest.mark.kafka, pytest.mark.integration]


def test_bench_smoke_run_writes_json_and_markdown(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--duration",
            "1",
            "--warmup",
            "0.5",
            "--reps",
            "1",
            "--concurrency",
            "4",
            "--floor-calls",
            "20",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        env={**os.environ, "PERDURE_BOOTSTRAP": kafka_bootstrap, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    [result_file] = tmp_path.glob("bench-*.json")
    result = json.loads(result_file.read_text())
    assert {row["workload"] for row in result["rows"]} == {
        "noop",
        "three_steps",
        "counter_1000",
        "counter_hot",
        "sleepy",
    }
    assert all(row["median"]["calls_per_s"] > 0 for row in result["rows"])
    assert result["floor"]["latency_p50_ms"] > 0
    assert result["step"]["floor_p50_ms"] > 0 and result["step"]["ten_steps_p50_ms"] > 0
    for row in result["rows"]:
        # Both systems served every workload and their CPU per call was measured.
        baseline = row["baseline"]["median"]
        assert baseline["calls_per_s"] > 0, f"Restate served no {row['workload']} call"
        assert baseline["errors"] == 0, f"Restate failed {row['workload']} calls"
        assert row["median"]["cpu_s_per_1k"]["worker"] > 0
        assert baseline["cpu_s_per_1k"]["restate-server"] > 0
        assert baseline["cpu_s_per_1k"]["restate-sdk"] > 0
    sub = result["subscription_counter"]
    assert sub["records"] == 300 and sub["records_per_s"] > 0 and sub["floor_records_per_s"] > 0
    [table] = tmp_path.glob("bench-*.md")
    assert "Against Restate, same run" in table.read_text()
    assert "## subscription_counter" in table.read_text()


def test_subscription_bench_smoke_run(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            *(sys.executable, "-m", "bench.subscriptions", "--records", "300", "--keys", "10"),
            *("--partitions", "2", "--out", str(tmp_path)),
        ],
        cwd=REPO,
        env={**os.environ, "PERDURE_BOOTSTRAP": kafka_bootstrap, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (result,) = tmp_path.glob("subscriptions-*.json")
    figures = json.loads(result.read_text())
    assert figures["records"] == 300 and figures["records_per_s"] > 0
    assert figures["floor_records_per_s"] > 0


def test_the_wire_codec_bench_compares_codecs_that_agree() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.wire_codec", "--rounds", "1", "--number", "200"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| encode |" in out.stdout and "| decode |" in out.stdout
