"""Avro's binary decoding by hand, the reverse of engine/avro_writer.py.

For the hot records only (engine/log_bytes.py, engine/status_head.py). A :class:`Reader`
walks one buffer; every method raises ``IndexError`` (past the end), ``ValueError`` (a union
branch or a length that cannot be) or ``UnicodeDecodeError``, which the callers turn into
their own errors. Unions are read strictly: only the branches their schema has.
"""

from __future__ import annotations

from perdure.engine.model import (
    Caller,
    CallSpec,
    EntryKind,
    Failure,
    HandlerKind,
    JournalEntry,
    Reply,
    StateOp,
    StateOpKind,
    Target,
)

ERRORS = (IndexError, ValueError, UnicodeDecodeError)
"""What reading a buffer that is not the expected record raises."""


class Reader:
    """Avro's binary primitives over one buffer (zig-zag varints, length-prefixed bytes)."""

    __slots__ = ("at", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def long(self) -> int:
        """An ``int`` or ``long``."""
        data = self.data
        at = self.at
        b = data[at]
        if b < 0x80:  # most values here (lengths, indexes, branches) fit in a byte
            self.at = at + 1
            return (b >> 1) ^ -(b & 1)
        shift = 0
        value = 0
        while True:
            b = data[at]
            at += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                self.at = at
                return (value >> 1) ^ -(value & 1)
            shift += 7
            if shift > 63:
                raise ValueError("a varint longer than a long")

    def raw(self) -> bytes:
        """``bytes``."""
        n = self.long()
        if n < 0:
            raise ValueError("a negative length")
        start = self.at
        end = start + n
        if end > len(self.data):
            raise IndexError("a length past the end")
        self.at = end
        return self.data[start:end]

    def text(self) -> str:
        """A ``string``."""
        return self.raw().decode()

    def boolean(self) -> bool:
        """A ``boolean``."""
        b = self.data[self.at]
        self.at += 1
        if b > 1:
            raise ValueError(f"a boolean of {b}")
        return b == 1

    def present(self) -> bool:
        """The branch of a ``["null", X]`` union: False for null, True for X."""
        b = self.data[self.at]
        self.at += 1
        if b == 0:
            return False
        if b == 2:  # branch 1, zig-zag encoded
            return True
        raise ValueError(f"union branch byte {b} of a two-branch union")

    def count(self) -> int:
        """The item count of an array's or a map's next block (0: the end)."""
        n = self.long()
        if n < 0:
            self.long()  # a negative count is followed by the block's size in bytes
            n = -n
        return n

    def optional_text(self) -> str | None:
        """A ``["null", "string"]`` union."""
        return self.text() if self.present() else None

    def optional_raw(self) -> bytes | None:
        """A ``["null", "bytes"]`` union."""
        return self.raw() if self.present() else None

    def optional_long(self) -> int | None:
        """A ``["null", "long"]`` (or ``int``) union."""
        return self.long() if self.present() else None

    def end(self) -> None:
        """Checks that the whole buffer was read: trailing bytes mean another record."""
        if self.at != len(self.data):
            raise ValueError(f"{len(self.data) - self.at} bytes after the record")


def target(r: Reader) -> Target:
    """A ``Target`` record."""
    return Target(r.text(), r.text(), r.optional_text())


def optional_failure(r: Reader) -> Failure | None:
    """A ``["null", "Failure"]`` union."""
    return Failure(r.long(), r.text()) if r.present() else None


def reply(r: Reader) -> Reply:
    """A ``Reply`` record."""
    return Reply(r.long(), r.text())


def optional_reply(r: Reader) -> Reply | None:
    """A ``["null", "Reply"]`` union."""
    return reply(r) if r.present() else None


def optional_caller(r: Reader) -> Caller | None:
    """A ``["null", "Caller"]`` union."""
    return Caller(r.text(), r.long()) if r.present() else None


def headers(r: Reader) -> tuple[tuple[str, str], ...]:
    """A map of strings, as the model holds it: pairs sorted by name (engine/codec.py)."""
    out: dict[str, str] = {}
    while n := r.count():
        for _ in range(n):
            name = r.text()
            out[name] = r.text()
    return tuple(sorted(out.items()))


def ints(r: Reader) -> tuple[int, ...]:
    """An array of ``int``."""
    out: list[int] = []
    while n := r.count():
        out.extend(r.long() for _ in range(n))
    return tuple(out)


def state_ops(r: Reader) -> tuple[StateOp, ...]:
    """An array of ``StateOp`` records."""
    out: list[StateOp] = []
    while n := r.count():
        for _ in range(n):
            out.append(StateOp(StateOpKind(r.text()), r.text(), r.optional_raw()))
    return tuple(out)


def optional_call(r: Reader) -> CallSpec | None:
    """A ``["null", "CallSpec"]`` union."""
    if not r.present():
        return None
    return CallSpec(target(r), HandlerKind(r.text()), r.raw(), r.text(), r.long())


def entry(r: Reader) -> JournalEntry:
    """A ``JournalEntry`` record."""
    return JournalEntry(
        EntryKind(r.text()),
        r.text(),
        r.optional_raw(),
        optional_failure(r),
        state_ops(r),
        optional_call(r),
        r.boolean(),
    )
