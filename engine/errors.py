"""The engine's exceptions: one root, :class:`EngineError`."""


class EngineError(Exception):
    """Root of every error raised by the engine."""


class CodecError(EngineError):
    """A record or stored value could not be encoded or decoded."""


class InvalidId(EngineError):
    """A string is not a well-formed invocation id."""
