"""Restate's service protocol on the wire: frames and the protobuf messages Perdure uses.

The byte format of the SDKs' ``/invoke`` stream (protocol V6, ``application/vnd.restate.
invocation.v6``): each frame is a big-endian ``type:u16 flags:u16 length:u32`` header and a
protobuf message. Field numbers follow Restate's ``protocol.proto`` (service-protocol, MIT); they
never change meaning there, so they never change here.

A message is a :class:`Fields` (field number to values) read lazily; building one is a list of
``(number, value)`` pairs. Protobuf's wire format needs only varints and length-delimited
fields for this protocol, so a few functions do it without generated code.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 6
"""The protocol version Perdure speaks: the current SDKs serve V5 to V7; Restate's default is V6."""
INVOCATION_CONTENT_TYPE = f"application/vnd.restate.invocation.v{PROTOCOL_VERSION}"
MIN_PROTOCOL, MAX_PROTOCOL = 5, 6
"""The versions an endpoint must overlap at registration (V7 only adds what Perdure ignores)."""

HEADER = struct.Struct(">HHI")

# Control frames
START = 0x0000
SUSPENSION = 0x0001
ERROR = 0x0002
END = 0x0003
PROPOSE_RUN_COMPLETION = 0x0005
AWAITING_ON = 0x0006
# Commands
INPUT = 0x0400
OUTPUT = 0x0401
GET_LAZY_STATE = 0x0402
SET_STATE = 0x0403
CLEAR_STATE = 0x0404
CLEAR_ALL_STATE = 0x0405
GET_LAZY_STATE_KEYS = 0x0406
GET_EAGER_STATE = 0x0407
GET_EAGER_STATE_KEYS = 0x0408
GET_PROMISE = 0x0409
PEEK_PROMISE = 0x040A
COMPLETE_PROMISE = 0x040B
SLEEP = 0x040C
CALL = 0x040D
ONE_WAY_CALL = 0x040E
SEND_SIGNAL = 0x0410
RUN = 0x0411
ATTACH_INVOCATION = 0x0412
GET_INVOCATION_OUTPUT = 0x0413
COMPLETE_AWAKEABLE = 0x0414
# Notifications
GET_PROMISE_COMPLETION = 0x8009
PEEK_PROMISE_COMPLETION = 0x800A
COMPLETE_PROMISE_COMPLETION = 0x800B
SLEEP_COMPLETION = 0x800C
CALL_COMPLETION = 0x800D
CALL_INVOCATION_ID = 0x800E
RUN_COMPLETION = 0x8011
SIGNAL = 0xFBFF

NAMES = {
    v: k
    for k, v in dict(globals()).items()
    if isinstance(v, int) and k.isupper() and k not in ("PROTOCOL_VERSION", "MIN_PROTOCOL")
}
"""Message type to its name, for error messages."""

JOURNAL_MISMATCH = 570
PROTOCOL_VIOLATION = 571
CANCEL_SIGNAL = 1
"""The built-in signal index that cancels an invocation."""
FIRST_USER_SIGNAL = 17
"""Awakeables take signal indexes from here on (0 to 16 are reserved)."""

Value = int | bytes
"""A field's value as read: a varint or the bytes of a length-delimited field."""
FieldList = Sequence[tuple[int, Any]]
"""A message to write: ``(number, value)`` with an int, str, bytes, a nested list or None."""


class WireError(ValueError):
    """Bytes that are not a valid frame or message of the protocol."""


# -- protobuf -----------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def encode(fields: FieldList) -> bytes:
    """A protobuf message from ``(number, value)`` pairs, in order.

    An ``int`` is a varint, ``bytes`` (and ``str``, as UTF-8) length-delimited, a list of pairs
    an embedded message; ``None`` is left out (an unset optional field).
    """
    out = bytearray()
    for number, value in fields:
        if value is None:
            continue
        if isinstance(value, bool | int):
            out += _varint(number << 3) + _varint(int(value))
            continue
        if isinstance(value, str):
            data = value.encode()
        elif isinstance(value, bytes | bytearray):
            data = bytes(value)
        else:
            data = encode(value)
        out += _varint(number << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


@dataclass(frozen=True)
class Fields:
    """A decoded protobuf message: the values of each field number, in wire order."""

    values: dict[int, list[Value]] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes) -> Fields:
        """Reads a message; raises :class:`WireError` on malformed bytes."""
        values: dict[int, list[Value]] = {}
        pos, end = 0, len(data)
        try:
            while pos < end:
                key, pos = _read_varint(data, pos)
                number, wire = key >> 3, key & 7
                value: Value
                if wire == 0:
                    value, pos = _read_varint(data, pos)
                elif wire == 2:
                    size, pos = _read_varint(data, pos)
                    if pos + size > end:
                        raise WireError("a field runs past the end of its message")
                    value, pos = data[pos : pos + size], pos + size
                elif wire == 1:
                    value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
                elif wire == 5:
                    value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
                else:
                    raise WireError(f"unsupported protobuf wire type {wire}")
                values.setdefault(number, []).append(value)
        except IndexError:
            raise WireError("a message ends inside a varint") from None
        return cls(values)

    def has(self, number: int) -> bool:
        return number in self.values

    def uint(self, number: int) -> int:
        got = self.values.get(number)
        return int(got[-1]) if got else 0

    def uints(self, number: int) -> list[int]:
        """A repeated uint32, packed or not."""
        out: list[int] = []
        for v in self.values.get(number, []):
            if isinstance(v, int):
                out.append(v)
            else:
                pos = 0
                while pos < len(v):
                    n, pos = _read_varint(v, pos)
                    out.append(n)
        return out

    def raw(self, number: int) -> bytes:
        got = self.values.get(number)
        return bytes(got[-1]) if got and isinstance(got[-1], bytes) else b""

    def string(self, number: int) -> str:
        return self.raw(number).decode("utf-8", errors="replace")

    def optional_string(self, number: int) -> str | None:
        return self.string(number) if number in self.values else None

    def message(self, number: int) -> Fields | None:
        return Fields.parse(self.raw(number)) if number in self.values else None

    def messages(self, number: int) -> list[Fields]:
        return [Fields.parse(v) for v in self.values.get(number, []) if isinstance(v, bytes)]


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


# -- frames -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One protocol message: its type, flags and protobuf body."""

    type: int
    body: bytes = b""
    flags: int = 0

    @property
    def fields(self) -> Fields:
        return Fields.parse(self.body)

    @property
    def name(self) -> str:
        return NAMES.get(self.type, f"0x{self.type:04x}")

    def to_bytes(self) -> bytes:
        return HEADER.pack(self.type, self.flags, len(self.body)) + self.body


def frame(type_: int, fields: FieldList) -> Frame:
    """A frame of ``type_`` whose body is the message of ``fields``."""
    return Frame(type_, encode(fields))


class FrameReader:
    """Splits a byte stream into frames as its chunks arrive."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> Iterator[Frame]:
        self._buffer += chunk
        while len(self._buffer) >= HEADER.size:
            type_, flags, size = HEADER.unpack_from(self._buffer)
            if len(self._buffer) < HEADER.size + size:
                return
            body = bytes(self._buffer[HEADER.size : HEADER.size + size])
            del self._buffer[: HEADER.size + size]
            yield Frame(type_, body, flags)

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame (a stream that ends with some was cut)."""
        return len(self._buffer)


# -- the messages Perdure builds ----------------------------------------------------------------


def value(content: bytes) -> FieldList:
    """A ``Value`` message."""
    return [(1, content)]


def failure(code: int, message: str) -> FieldList:
    """A ``Failure`` message."""
    return [(1, code), (2, message)]


@dataclass(frozen=True)
class Outcome:
    """A value or a terminal failure, as commands and notifications carry them."""

    value: bytes | None = None
    failure: tuple[int, str] | None = None

    @classmethod
    def read(
        cls, fields: Fields, value_field: int, failure_field: int, bare_value: bool = False
    ) -> Outcome:
        """Reads it from ``fields``; ``bare_value``: the value field is the bytes themselves,
        not a ``Value`` message (as in ``ProposeRunCompletion``)."""
        f = fields.message(failure_field)
        if f is not None:
            return cls(failure=(f.uint(1), f.string(2)))
        if bare_value:
            return cls(value=fields.raw(value_field))
        v = fields.message(value_field)
        return cls(value=v.raw(1) if v is not None else b"")
