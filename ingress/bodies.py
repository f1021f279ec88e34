"""Request bodies at the ingress: read within the size limit, checked as JSON."""

from __future__ import annotations

import json

from fastapi import Request

from perdure.ingress.errors import IngressError


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def strict_loads(body: bytes | str) -> object:
    """JSON as RFC 8259 has it: ``NaN`` and ``Infinity`` raise ValueError (Python takes them)."""
    return json.loads(body, parse_constant=_no_constant)


def check_json(body: bytes, what: str) -> None:
    """Raises a 400 unless ``body`` is strict JSON (RFC 8259: no ``NaN`` or ``Infinity``,
    which Python's reader takes and most other languages' readers refuse), not nested too
    deeply to be read."""
    try:
        strict_loads(body)
    except ValueError as err:
        raise IngressError(400, f"{what} is not valid JSON: {err}") from err
    except RecursionError:
        raise IngressError(400, f"{what} is nested too deeply to be read as JSON") from None


def rejection_reason(body: bytes) -> str:
    """A rejection's reason: a JSON string, or the body as text."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return body.decode(errors="replace") or "rejected"
    return parsed if isinstance(parsed, str) else json.dumps(parsed)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise IngressError(413, f"the request body is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise IngressError(413, f"the request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
