"""The README's table of environment variables is the one the settings classes make."""

from __future__ import annotations

import re

import pytest

from perdure.partitions.config import WorkerSettings
from perdure.process.settings import SettingsError
from perdure.settings_table import readme_table
from tests.cluster import REPO


def test_the_readme_lists_every_variable_the_settings_read() -> None:
    text = (REPO / "README.md").read_text()
    found = re.search(
        r"<!-- settings-table: begin -->\n(.*?)\n<!-- settings-table: end -->", text, re.S
    )
    assert found, "README.md has no settings table"
    assert found.group(1) == readme_table(), "regenerate it: python -m perdure.settings_table"


def test_a_value_that_does_not_convert_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERDURE_PARTITIONS", "many")
    with pytest.raises(SettingsError, match="PERDURE_PARTITIONS='many'"):
        WorkerSettings.from_env()


def test_a_flag_wins_over_its_variable_and_settings_are_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PERDURE_PARTITIONS", "4")
    assert WorkerSettings.from_env().partitions == 4
    settings = WorkerSettings.from_env(partitions=2)
    assert settings.partitions == 2
    with pytest.raises(ValueError, match="frozen"):
        settings.partitions = 3  # type: ignore[misc]
