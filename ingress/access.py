"""Access control for the HTTP faces: a bearer token, and a cap on request bodies.

``PERDURE_INGRESS_TOKEN`` (the ingress) and ``PERDURE_ADMIN_TOKEN`` (the admin API): when one
is set, every request but the health probes must carry ``Authorization: Bearer <token>``, or
gets a 401 that says so. The token is compared in constant time. Unset, the port is open, as
before: a deployment that exposes it puts a token on it, or a proxy in front.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/health", "/restate/health", "/health/live", "/health/ready"})
"""What load balancers and orchestrators probe without credentials."""


async def _refuse(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"code": status, "message": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AccessGuard:
    """ASGI middleware: the bearer token (if any) and the body cap, before anything else runs.

    Args:
        app: what it guards.
        token: the expected bearer token; empty: no token needed.
        max_body_bytes: larger declared bodies get a 413 (0: no cap here; the ingress checks
            its calls' bodies as it reads them, chunked ones included).
        what: the process's name, for the refusal's words.
        open_prefixes: paths served without the token (the admin's web UI: static files that
            hold no data and ask for the token before they read any, and the redirects to
            them: a prefix ending in ``/`` also opens the path without it and ``/``).
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        max_body_bytes: int = 0,
        what: str = "",
        open_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.open_prefixes = open_prefixes
        self.open_paths = OPEN_PATHS | {p.rstrip("/") for p in open_prefixes}
        if open_prefixes:
            self.open_paths |= {"/"}
        self.expected = f"Bearer {token}".encode() if token else b""
        self.max_body_bytes = max_body_bytes
        self.what = what or "this API"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not (self.expected or self.max_body_bytes)
            or scope["type"] != "http"
            or scope["path"] in self.open_paths
            or (self.open_prefixes and scope["path"].startswith(self.open_prefixes))
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.expected:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                why = (
                    "wrong bearer token" if given else "an Authorization: Bearer token is required"
                )
                await _refuse(
                    send, 401, f"{why} for {self.what}", [(b"www-authenticate", b"Bearer")]
                )
                return
        if self.max_body_bytes:
            length = headers.get(b"content-length", b"0")
            if length.isdigit() and int(length) > self.max_body_bytes:
                await _refuse(send, 413, f"the body is over {self.max_body_bytes} bytes", [])
                return
        await self.app(scope, receive, send)
