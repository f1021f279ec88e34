"""Frozen settings objects read from explicit values, then ``PERDURE_*`` variables, then defaults.

One reader for every process's settings (worker, ingress, admin), so that a variable means the
same thing everywhere: ``PERDURE_<FIELD>`` (or ``<prefix><FIELD>``), converted to the type of
the field's default; booleans take ``1/true/yes/on``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_TRUE = ("1", "true", "yes", "on")


def read_settings(cls: type[T], given: dict[str, Any], prefix: str = "PERDURE_") -> T:
    """An instance of the dataclass ``cls`` from ``given`` (None = not given), the
    environment and the defaults.

    Raises:
        ValueError: a variable that does not convert to its field's type.
    """
    defaults = cls()
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if given.get(f.name) is not None:
            values[f.name] = given[f.name]
            continue
        name = f"{prefix}{f.name.upper()}"
        raw = os.environ.get(name)
        if raw is None:
            continue
        default = getattr(defaults, f.name)
        try:
            if isinstance(default, bool):
                values[f.name] = raw.strip().lower() in _TRUE
            elif isinstance(default, Path):
                values[f.name] = Path(raw)
            else:
                values[f.name] = type(default)(raw)
        except ValueError as err:
            raise ValueError(f"{name}={raw!r}: {err}") from None
    return cls(**values)
