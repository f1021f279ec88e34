"""Avro schemas and converters derived from the engine's record dataclasses.

Each record is declared once, as a frozen dataclass (engine/model.py, engine/records.py). Its
Avro schema, and its conversion to and from the dicts fastavro writes and reads, are derived
here from its fields, in their order:

==============================  ================================================
Python                          Avro
==============================  ================================================
``str``, ``bytes``, ``bool``    ``string``, ``bytes``, ``boolean``
``int``                         ``long``
``Int32`` (engine/model.py)     ``int``
a ``StrEnum``                   ``string`` (its value)
``X | None``                    ``["null", X]``, default null
``tuple[X, ...]``               ``{"type": "array", "items": X}``
``tuple[tuple[str, X], ...]``   ``{"type": "map", "values": X}`` (read back sorted by key)
a dataclass                     its named record (``dev.perdure.v1.<class name>``)
==============================  ================================================

A field's Avro default is its dataclass default where Avro can hold it. A field a byte format
still carries but no code reads is declared :class:`Retired`, beside the format's schema
(engine/schemas.py): it is written with a fixed value and skipped when read. What a schema
means never changes: ``tests/engine/test_schemas.py`` pins the derived schemas' canonical forms.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from perdure.engine.model import INT32

NAMESPACE = "dev.perdure.v1"

Convert = Callable[[Any], Any]


@dataclass(frozen=True)
class Retired:
    """A field the format keeps after ``after``, written as ``value`` and never read."""

    name: str
    after: str
    avro_type: Any
    value: Any


class AvroRecord:
    """The derived Avro form of one dataclass: :attr:`schema`, :meth:`to_avro`, :meth:`from_avro`.

    Made once per class (:meth:`of`); the converters are built when it is made.
    """

    _made: ClassVar[dict[type, AvroRecord]] = {}

    def __init__(self, cls: type, retired: Sequence[Retired] = ()) -> None:
        self.cls = cls
        self.full_name = f"{NAMESPACE}.{cls.__name__}"
        hints = typing.get_type_hints(cls, include_extras=True)
        fields: list[dict[str, Any]] = []
        self._out: list[tuple[str, Convert | None]] = []
        self._in: list[tuple[str, Convert | None]] = []
        self.retired = tuple(retired)
        self._fixed = {r.name: r.value for r in retired}
        for f in dataclasses.fields(cls):
            avro_type, out, back = _derive(hints[f.name])
            declared: dict[str, Any] = {"name": f.name, "type": avro_type}
            default = _default(f, avro_type)
            if default is not _NO_DEFAULT:
                declared["default"] = default
            fields.append(declared)
            self._out.append((f.name, out))
            self._in.append((f.name, back))
            for r in retired:
                if r.after == f.name:
                    fields.append({"name": r.name, "type": r.avro_type})
        self.schema: dict[str, Any] = {
            "type": "record",
            "name": cls.__name__,
            "namespace": NAMESPACE,
            "fields": fields,
        }

    @classmethod
    def of(cls, record: type, retired: Sequence[Retired] = ()) -> AvroRecord:
        """The derived form of ``record`` (made on first use; ``retired`` only then)."""
        made = cls._made.get(record)
        if made is None:
            made = cls._made[record] = AvroRecord(record, retired)
        elif retired and made.retired != tuple(retired):
            # A format's retired fields are part of its bytes: one form per class, or none.
            raise ValueError(f"{record.__name__} was derived before with other retired fields")
        return made

    def to_avro(self, obj: Any) -> dict[str, Any]:
        """``obj`` as the dict fastavro writes with :attr:`schema`."""
        out: dict[str, Any] = {}
        for name, conv in self._out:
            value = getattr(obj, name)
            out[name] = value if conv is None else conv(value)
        if self._fixed:
            out.update(self._fixed)
        return out

    def from_avro(self, data: dict[str, Any]) -> Any:
        """The record fastavro read with :attr:`schema` (retired fields skipped)."""
        return self.cls(
            *[data[name] if conv is None else conv(data[name]) for name, conv in self._in]
        )


_NO_DEFAULT = object()


def _default(f: dataclasses.Field[Any], avro_type: Any) -> Any:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return _NO_DEFAULT
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return {} if isinstance(avro_type, dict) and avro_type["type"] == "map" else []
    if value is None or isinstance(value, bool | int | str):
        return value
    return _NO_DEFAULT  # bytes and the like: Avro's JSON defaults cannot say them plainly


def _derive(tp: Any) -> tuple[Any, Convert | None, Convert | None]:
    """The Avro type of a Python type, and the conversions out and back (None: as it is)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *marks = typing.get_args(tp)
        if base is int and INT32 in marks:
            return "int", None, None
        return _derive(base)
    if tp is str:
        return "string", None, None
    if tp is bytes:
        return "bytes", None, None
    if tp is bool:
        return "boolean", None, None
    if tp is int:
        return "long", None, None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "string", _enum_value, tp
    if origin in (types.UnionType, typing.Union):
        return _optional(tp)
    if origin is tuple:
        return _sequence(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        record = AvroRecord.of(tp)
        return record.full_name, record.to_avro, record.from_avro
    raise TypeError(f"no Avro form for {tp!r}")


def _enum_value(value: enum.Enum) -> Any:
    return value.value


def _optional(tp: Any) -> tuple[Any, Convert | None, Convert | None]:
    args = typing.get_args(tp)
    inner = [a for a in args if a is not type(None)]
    if len(inner) != 1 or len(args) != 2:
        raise TypeError(f"only X | None unions have an Avro form, not {tp!r}")
    avro_type, out, back = _derive(inner[0])
    record = isinstance(inner[0], type) and dataclasses.is_dataclass(inner[0])
    if out is None and back is None and not record:
        return ["null", avro_type], None, None

    def optional_out(value: Any) -> Any:
        if value is None:
            return None
        return value if out is None else out(value)

    def optional_in(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, tuple):  # a union's record, read with its name
            value = value[1]
        return value if back is None else back(value)

    return ["null", avro_type], optional_out, optional_in


def _sequence(tp: Any) -> tuple[Any, Convert | None, Convert | None]:
    args = typing.get_args(tp)
    if len(args) != 2 or args[1] is not Ellipsis:
        raise TypeError(f"only tuple[X, ...] has an Avro form, not {tp!r}")
    item = args[0]
    pair = typing.get_args(item) if typing.get_origin(item) is tuple else ()
    if len(pair) == 2 and pair[0] is str:
        values, out, back = _derive(pair[1])
        return (
            {"type": "map", "values": values},
            lambda pairs: {k: v if out is None else out(v) for k, v in pairs},
            lambda d: tuple(sorted((k, v if back is None else back(v)) for k, v in d.items())),
        )
    items, item_out, item_in = _derive(item)
    return (
        {"type": "array", "items": items},
        list if item_out is None else (lambda xs: [item_out(x) for x in xs]),
        tuple if item_in is None else (lambda xs: tuple(item_in(x) for x in xs)),
    )
