"""Every planted fault is caught by the simulator within the seeds CI runs.

Each patch breaks one guarantee (partitions/simulation/planted.py); the simulator must report a
violation for at least one of the CI seeds. The seeds that catch each are printed, so that a
change that makes one harder to find shows in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from perdure.partitions.simulation.planted import PLANTED
from perdure.partitions.simulation.world import run_seed
from tests.partitions.simulation.test_simulation import CI_SEEDS


@pytest.fixture(autouse=True)
def quiet_engine() -> Iterator[None]:
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.simulation
@pytest.mark.parametrize("name", sorted(PLANTED))
def test_the_simulator_catches_the_planted_fault(name: str) -> None:
    with PLANTED[name]():
        for seed in CI_SEEDS:
            outcome = run_seed(seed)
            if not outcome.ok:
                print(f"{name}: caught by seed {seed}: {outcome.violations[0]}")
                return
    pytest.fail(f"no seed of {len(CI_SEEDS)} caught {name}")
