"""engine/deployments.py: the deployment record's byte format and the retry policies it carries."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from perdure.engine.deployments import Deployment, RetrySettings

DEP = Deployment("dp_1", "http://h:9080", "2", 6, ("svc",), 1000, "bidi")


def test_a_record_without_retry_policies_reads_as_before_and_writes_none() -> None:
    old = {"v": 1, "id": "dp_1", "uri": "http://h:9080", "protocol": 6, "services": ["svc"]}
    dep = Deployment.from_json(json.dumps(old))
    assert dep.retry == () and dep.mode == "request_response" and dep.http == "2"
    assert "retry" not in json.loads(DEP.to_json())
    assert Deployment.from_json(DEP.to_json()) == DEP


def test_retry_policies_round_trip_and_a_handlers_fields_override_its_services() -> None:
    service = RetrySettings(initial_ms=50, attempts=2, on_max="KILL")
    handler = RetrySettings(on_max="PAUSE", factor=3.0)
    dep = replace(DEP, retry=(("svc", service), ("svc/h", handler)))
    again = Deployment.from_json(dep.to_json())
    assert again == dep
    assert again.retry_for("svc", "h") == RetrySettings(50, None, 3.0, 2, "PAUSE")
    assert again.retry_for("svc", "other") == service
    assert again.retry_for("else", "h") == RetrySettings()


def test_the_manifests_fields_are_read_and_bad_ones_named() -> None:
    manifest_handler = {
        "name": "h",
        "retryPolicyInitialInterval": 100,
        "retryPolicyMaxInterval": 5000,
        "retryPolicyExponentiationFactor": 1.5,
        "retryPolicyMaxAttempts": 4,
        "retryPolicyOnMaxAttempts": "PAUSE",
    }
    assert RetrySettings.from_manifest(manifest_handler) == RetrySettings(
        100, 5000, 1.5, 4, "PAUSE"
    )
    assert RetrySettings.from_manifest({"name": "h", "ty": "SHARED"}) is None
    for field, bad in [
        ("retryPolicyMaxAttempts", 0),
        ("retryPolicyExponentiationFactor", 0.5),
        ("retryPolicyInitialInterval", "1s"),
        ("retryPolicyInitialInterval", True),
        ("retryPolicyOnMaxAttempts", "RETRY"),
    ]:
        with pytest.raises(ValueError, match="svc/h"):
            RetrySettings.from_manifest({"name": "svc/h", field: bad})
