"""uvicorn's HTTP protocol, with its own answers to bad HTTP in the ingress's JSON shape.

A request uvicorn cannot parse (a request line or headers past the parser's limits, such as a
URL of 70,000 characters, or bytes that are not HTTP) never reaches the app: uvicorn answers it
itself, as ``400 Invalid HTTP request received.`` in plain text. Clients of Perdure read every
error as ``{"code": N, "message": "..."}``, so this protocol answers that shape instead;
everything else is uvicorn's own.
"""

from __future__ import annotations

import asyncio
import json

_MESSAGE = (
    "invalid HTTP request: it could not be parsed, or its request line or headers are too "
    "long (a URL of tens of thousands of characters, say)"
)


def _json_400(msg: str) -> tuple[bytes, bytes]:
    body = json.dumps({"code": 400, "message": f"{_MESSAGE} ({msg.rstrip('.')})"}).encode()
    return body, b"application/json"


def protocol_class() -> type[asyncio.Protocol]:
    """The HTTP protocol uvicorn would pick (httptools if installed, else h11), answering
    requests it cannot parse with the JSON error."""
    try:
        from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
    except ImportError:
        return _h11_class()

    class JsonErrorsHttpTools(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            body, kind = _json_400(msg)
            content = [STATUS_LINE[400]]
            for name, value in self.server_state.default_headers:
                content.extend([name, b": ", value, b"\r\n"])
            content.extend(
                [
                    b"content-type: " + kind + b"\r\n",
                    b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                    b"connection: close\r\n",
                    b"\r\n",
                    body,
                ]
            )
            self.transport.write(b"".join(content))
            self.transport.close()

    return JsonErrorsHttpTools


def _h11_class() -> type[asyncio.Protocol]:
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class JsonErrorsH11(H11Protocol):
        def send_400_response(self, msg: str) -> None:
            body, kind = _json_400(msg)
            headers = [(b"content-type", kind), (b"connection", b"close")]
            self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers)))
            self.transport.write(self.conn.send(h11.Data(data=body)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
            self.transport.close()

    return JsonErrorsH11
