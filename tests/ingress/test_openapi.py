"""The OpenAPI document made from the registry: one path per handler, with its schemas."""

from __future__ import annotations

from perdure.ingress.openapi import document
from tests.apps.testapp import app


def test_every_handler_has_a_path_with_its_schemas() -> None:
    services = {entry["name"]: entry for entry in app.manifest()}
    doc = document(services, {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}})
    typed = doc["paths"]["/tests/typed"]["post"]
    body = typed["requestBody"]["content"]["application/json"]["schema"]
    assert body["title"] == "Order"
    assert set(body["properties"]) == {"order_id", "amount"}
    assert body["properties"]["amount"]["exclusiveMinimum"] == 0
    result = typed["responses"]["200"]["content"]["application/json"]["schema"]
    assert result["title"] == "Receipt" and set(result["properties"]) == {"order_id", "total"}
    assert "/counter/{key}/add" in doc["paths"] and "/counter/{key}/add/send" in doc["paths"]
    assert "requestBody" not in doc["paths"]["/tests/no_input"]["post"]
