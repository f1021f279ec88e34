"""The deterministic simulator: it runs the real engine on virtual time, replays a seed
identically, and the seeds CI runs keep every invariant.

CI_SEEDS is the fixed set ``.ci/run`` holds the engine to; a seed that fails prints the command
that replays it (python -m partitions.simulation --seed S --trace).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import pytest

from perdure.partitions.simulation.__main__ import main
from perdure.partitions.simulation.loop import SimLoop, SimulationStuck
from perdure.partitions.simulation.world import Options, run_seed

CI_SEEDS = range(200)
BUDGET_S = 150.0
"""The wall time the CI seeds may take on a CI machine (they take about 40 s here)."""


@pytest.fixture(autouse=True)
def quiet_engine() -> Iterator[None]:
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def test_the_loop_runs_on_virtual_time_and_says_when_nothing_can_run() -> None:
    loop = SimLoop()

    async def a_day() -> float:
        await asyncio.sleep(86_400)
        await asyncio.wait_for(asyncio.sleep(1), 5)
        return loop.time()

    began = time.perf_counter()
    assert loop.run_until_complete(a_day()) == 86_401.0
    assert time.perf_counter() - began < 1.0

    async def for_ever() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(SimulationStuck):
        loop.run_until_complete(for_ever())
    loop.close()


def test_a_seed_replays_identically() -> None:
    first, second = run_seed(7), run_seed(7)
    assert first.fingerprint == second.fingerprint and first.trace == second.trace
    assert first.records > 50 and first.faults > 0
    assert run_seed(8).fingerprint != first.fingerprint


def test_the_workload_runs_every_kind_of_request_without_faults() -> None:
    outcome = run_seed(3, Options(faults=False, steps=60))
    assert outcome.ok, outcome.violations
    assert outcome.faults == 0


@pytest.mark.simulation
def test_the_ci_seeds_keep_every_invariant() -> None:
    began = time.perf_counter()
    failed = []
    faults = 0
    for seed in CI_SEEDS:
        outcome = run_seed(seed)
        faults += outcome.faults
        if not outcome.ok:
            failed.append((seed, outcome.violations[:3]))
    seconds = time.perf_counter() - began
    print(f"{len(CI_SEEDS)} seeds in {seconds:.1f}s, {faults / len(CI_SEEDS):.1f} faults per run")
    assert not failed, f"replay with: python -m partitions.simulation --seed S --trace: {failed}"
    assert faults / len(CI_SEEDS) >= 5, "the runs inject faults"
    assert seconds < BUDGET_S


def test_a_failing_seed_prints_the_one_command_that_replays_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--seed", "0", "--plant", "timer-one-tick-early"]) == 1
    out = capsys.readouterr().out
    assert "a timer fired early" in out and "the last events:" in out
    command = next(line for line in out.splitlines() if "replay: " in line)
    args = command.split("replay: python -m partitions.simulation ")[1].split()
    assert args == ["--seed", "0", "--steps", "24", "--plant", "timer-one-tick-early", "--trace"]
    assert main(args) == 1
    again = capsys.readouterr().out
    violations = [line for line in out.splitlines() if line.startswith("  - ")]
    assert violations and all(v in again for v in violations), "the same run, the same faults"
