"""The limits the byte formats impose, checked at every edge before anything is appended.

Each limit is a property of a byte format that never changes meaning (engine/keys.py, the Avro
schemas in engine/schemas.py), so it lives here, beside them, once:

- a name or key is stored as a component with a 2-byte length: at most 65,535 bytes of UTF-8;
- a journal index, an awakeable's index and a signal's index are 4-byte unsigned integers;
- a time is an 8-byte unsigned key and an Avro ``long``: a wake-up time (record time + delay)
  must stay below 2**63 ms, so a delay is at most 2**62 ms (146 million years) while the record
  times of this era are far below 2**62.

Every edge (the ingress, the SDK context, the admin API, subscriptions, Restate SDK commands)
calls these checks and turns :class:`LimitExceeded` into its own clear answer (a 400, a
``TerminalError``); the state machine rejects a record that passed an edge anyway
(engine/rejection.py), so no input stops a partition.
"""

from __future__ import annotations

from perdure.engine.errors import EngineError

MAX_COMPONENT_BYTES = 0xFFFF
"""The longest name, key or id a store key holds (2-byte length prefix), in UTF-8 bytes."""

MAX_U32 = 0xFFFFFFFF
"""The largest journal, awakeable or signal index (4 bytes, unsigned)."""

MAX_DELAY_MS = 2**62
"""The longest delay or sleep, in ms: record time + delay stays within a signed 64-bit long."""


MAX_FAILURE_CODE = 2**31 - 1
"""A failure's code is an Avro ``int``; HTTP only has 100-599 (engine-side codes go wider)."""


def failure_code(code: int, message: str) -> tuple[int, str]:
    """A failure's code and message that the formats hold: a code outside a signed 32-bit
    ``int`` becomes 500, with the code given kept in the message."""
    if -MAX_FAILURE_CODE - 1 <= code <= MAX_FAILURE_CODE:
        return code, message
    return 500, f"{message} (code {code})"


class LimitExceeded(EngineError, ValueError):
    """A value is outside what the byte formats can hold; the message names it and the limit."""


def check_name(value: str, what: str) -> str:
    """``value`` if its UTF-8 fits a store key's component; :class:`LimitExceeded` otherwise.

    Args:
        value: a service, handler, key, state or promise name, or an id.
        what: what it is, for the message ("object key", "state name", ...).
    """
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise LimitExceeded(f"{what} is not valid Unicode (a lone surrogate)") from None
    if size > MAX_COMPONENT_BYTES:
        raise LimitExceeded(f"{what} is {size} bytes long; the limit is {MAX_COMPONENT_BYTES}")
    return value


def check_delay_ms(value: int, what: str = "delay") -> int:
    """``value`` if it is a delay the log can hold (0..MAX_DELAY_MS ms); LimitExceeded otherwise."""
    if value < 0:
        raise LimitExceeded(f"{what} is negative ({value} ms)")
    if value > MAX_DELAY_MS:
        raise LimitExceeded(f"{what} of {value} ms is over the limit of {MAX_DELAY_MS} ms")
    return value


def check_u32(value: int, what: str) -> int:
    """``value`` if it fits an unsigned 32-bit index; :class:`LimitExceeded` otherwise."""
    if not 0 <= value <= MAX_U32:
        raise LimitExceeded(f"{what} {value} is outside 0..{MAX_U32}")
    return value


def parse_u32(text: str, what: str) -> int:
    """A strictly written index: ASCII digits, no sign, no leading zero, at most ``MAX_U32``.

    Raises:
        LimitExceeded: for anything else (``"00"``, ``"+1"``, ``"٣"``, ``"4294967296"``), so
            that one index has one spelling and never reaches a 4-byte key it does not fit.
    """
    if not text or not text.isascii() or not text.isdigit() or (text[0] == "0" and len(text) > 1):
        raise LimitExceeded(f"{what} {text[:40]!r} is not a decimal index")
    if len(text) > 10:
        raise LimitExceeded(f"{what} {text[:40]!r} is outside 0..{MAX_U32}")
    return check_u32(int(text), what)
