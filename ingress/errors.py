"""The ingress's exceptions: one root, :class:`IngressError`."""


class IngressError(Exception):
    """Root of the ingress's errors; carries the HTTP status and message it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
