"""The ingress's exceptions: one root, :class:`IngressError`."""

from perdure.engine.limits import LimitExceeded, check_name


class IngressError(Exception):
    """Root of the ingress's errors; carries the HTTP status and message it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def checked_name(value: str, what: str) -> str:
    """``value`` if a store key can hold it (engine/limits.py); a 400 otherwise."""
    try:
        return check_name(value, what)
    except LimitExceeded as err:
        raise IngressError(400, str(err)) from None
