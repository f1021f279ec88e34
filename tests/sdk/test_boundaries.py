"""The SDK's boundaries: every engine module is classified as model (the SDK may use it) or
machinery (an import-linter contract forbids it), so a new engine module is a decision."""

from __future__ import annotations

import tomllib

from tests.cluster import REPO

MODEL = {"errors", "ids", "limits", "model", "scopes", "subscriptions"}
"""What the SDK may import of the engine: values and the rules of their formats."""


def _contract(name_starts: str) -> dict[str, object]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (found,) = [c for c in contracts if c["name"].startswith(name_starts)]
    return dict(found)


def test_every_engine_module_is_model_or_forbidden_to_the_sdk() -> None:
    engine = {p.stem for p in (REPO / "engine").glob("*.py") if p.stem != "__init__"}
    contract = _contract("sdk uses the engine's model")
    forbidden = {str(m).removeprefix("perdure.engine.") for m in contract["forbidden_modules"]}  # type: ignore[attr-defined]
    assert MODEL.isdisjoint(forbidden)
    assert engine - MODEL == forbidden, "classify the engine's new modules here and in pyproject"


def test_every_private_sdk_module_is_forbidden_to_its_hosts() -> None:
    sdk = {p.stem for p in (REPO / "sdk").glob("*.py") if p.stem not in ("__init__", "hosting")}
    contract = _contract("the hosts of handlers use the SDK's public API")
    forbidden = {str(m).removeprefix("perdure.sdk.") for m in contract["forbidden_modules"]}  # type: ignore[attr-defined]
    assert sdk == forbidden
