"""JSON serde for handler inputs, outputs and step results.

Values are JSON. When a type is known (an annotation on the handler or on a step's function),
pydantic converts to and from it, so pydantic models, dataclasses and typed collections work; a
value that does not validate is a :class:`~sdk.errors.TerminalError` with status 400.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import pydantic
import pydantic_core

from perdure.sdk.errors import TerminalError


@lru_cache(maxsize=1024)
def _adapter(type_hint: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(type_hint)


def _plain(type_hint: Any) -> bool:
    return type_hint is None or type_hint is Any


def encode(value: Any, type_hint: Any = None) -> bytes:
    """Serializes ``value`` to JSON bytes."""
    if _plain(type_hint) or type_hint in (dict, list, str, int, float, bool):
        try:
            return json.dumps(value, separators=(",", ":")).encode()
        except TypeError:
            pass  # not plain JSON (a model, a dataclass): pydantic knows how
    hint: Any = type(value) if _plain(type_hint) else type_hint
    try:
        return _adapter(hint).dump_json(value)
    except (
        pydantic_core.PydanticSerializationError,
        pydantic.PydanticSchemaGenerationError,
    ) as err:
        raise TerminalError(f"cannot serialize {type(value).__name__} as JSON: {err}") from err


def decode(data: bytes, type_hint: Any = None, *, what: str = "value") -> Any:
    """Parses JSON bytes, validating against ``type_hint`` when given.

    A ``bytes`` hint takes the bytes as they are (a Kafka record's payload, a binary body).

    Raises:
        TerminalError: with status 400, if the bytes are not JSON or do not validate.
    """
    if type_hint is bytes:
        return data
    if _plain(type_hint):
        try:
            return json.loads(data) if data else None
        except ValueError as err:
            raise TerminalError(f"{what} is not valid JSON: {err}", 400) from err
    try:
        return _adapter(type_hint).validate_json(data if data else b"null")
    except pydantic.ValidationError as err:
        raise TerminalError(f"{what} does not validate: {err}", 400) from err


def json_schema(type_hint: Any) -> dict[str, Any]:
    """The JSON Schema of values of ``type_hint`` ({} when any JSON goes)."""
    if _plain(type_hint):
        return {}
    try:
        # Definitions are referred to where an OpenAPI document keeps them.
        schema: dict[str, Any] = _adapter(type_hint).json_schema(
            ref_template="#/components/schemas/{model}"
        )
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError):
        return {}
    return schema
