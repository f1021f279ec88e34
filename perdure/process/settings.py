"""Settings: frozen objects a process reads once, from flags, then ``PERDURE_*`` variables.

Every process's settings class (WorkerSettings, IngressSettings, AdminSettings, ProcessSettings)
derives from :class:`PerdureSettings` (pydantic-settings): a field ``name`` reads
``PERDURE_NAME`` unless given, converted and checked against the field's type; a value that
does not convert is a :class:`SettingsError` naming the variable. The README's table of
variables is made from these classes (``python -m perdure.settings_table``), and a test keeps
the two the same.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, Literal, Self

import pydantic
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(ValueError):
    """A setting that does not convert to its type; the message names its variable."""


class PerdureSettings(BaseSettings):
    """Frozen; a field reads ``PERDURE_<FIELD>`` (see :meth:`from_env`)."""

    model_config = SettingsConfigDict(
        env_prefix="PERDURE_",
        frozen=True,
        use_attribute_docstrings=True,
        validate_by_name=True,
        extra="forbid",
    )

    @classmethod
    def from_env(cls, **given: Any) -> Self:
        """The settings from the values given (None: not given), then the environment, then the
        defaults.

        Raises:
            SettingsError: a value that does not convert to its field's type.
        """
        try:
            return cls(**{k: v for k, v in given.items() if v is not None})
        except pydantic.ValidationError as err:
            raise SettingsError(_explain(cls, err)) from None

    @classmethod
    def variable(cls, name: str) -> str:
        """The environment variable field ``name`` reads first."""
        alias = cls.model_fields[name].validation_alias
        if isinstance(alias, pydantic.AliasChoices):
            return str(alias.choices[0])
        prefix = cls.model_config.get("env_prefix", "")
        return f"{prefix}{name.upper()}"


def _explain(cls: type[PerdureSettings], err: pydantic.ValidationError) -> str:
    parts = []
    for e in err.errors():
        field = str(e["loc"][0]) if e["loc"] else "?"
        where = cls.variable(field) if field in cls.model_fields else field
        parts.append(f"{where}={e.get('input')!r}: {e['msg']}")
    return "; ".join(parts)


class ProcessSettings(PerdureSettings):
    """What every ``perdure`` command reads, whatever it runs."""

    log_level: str = "INFO"
    """The lowest level logged (``DEBUG``, ``INFO``, ``WARNING``, ...)."""
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line, for log pipelines."""


def table(classes: list[type[PerdureSettings]]) -> str:
    """The Markdown table of the variables ``classes`` read: name, default, who reads it, what
    it does (the first class that reads a variable describes it)."""
    found: dict[str, tuple[str, list[str], str]] = {}
    for cls in classes:
        for name, info in cls.model_fields.items():
            variable = cls.variable(name)
            if variable in found:
                found[variable][1].append(cls.__name__)
                continue
            default = info.get_default(call_default_factory=False)
            if info.default_factory is not None:
                shown = "(computed)"
            else:
                shown = repr(str(default)) if isinstance(default, PurePath) else repr(default)
            about = " ".join((info.description or "").split())
            found[variable] = (shown, [cls.__name__], about)
    rows = ["| variable | default | read by | meaning |", "| --- | --- | --- | --- |"]
    for variable, (shown, readers, about) in found.items():
        rows.append(f"| `{variable}` | `{shown}` | {', '.join(readers)} | {about} |")
    return "\n".join(rows)
