"""Every request a new user could send without a token, tried at the ingress (issue 31).

Each of these got a 2xx or hung on the main this issue started from, and the record it
appended stopped the partition for good (every later call answered 500 under
``perdure dev --embedded``, and a restart exited with code 3). Now each gets a clear JSON 4xx,
nothing is appended, and the partition answers the next call. Run over ``perdure dev
--embedded`` (the whole ingress and the real partition runtime, no broker), then restarted:
the log it left replays.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.partitions.test_embedded import Embedded

pytestmark = pytest.mark.fault

LONG = "k" * 70_000


@pytest.fixture
def edges(tmp_path: Path) -> Iterator[Embedded]:
    made = Embedded(tmp_path, "tests.apps.edges:app")
    yield made
    made.stop()


def _raw_post(port: int, path: str) -> tuple[int, dict[str, object]]:
    """A POST on a socket of its own: httpx refuses to send a URL this long."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert body["code"] == status and body["message"], body
    return str(body["message"])


def test_absurd_requests_get_a_clear_4xx_and_the_partition_goes_on(edges: Embedded) -> None:
    edges.start()
    with httpx.Client(base_url=edges.url, timeout=30) as h:
        for delay in ("99999999999999999999", "99999999999999999999s", "P99999999999999D"):
            _error(h.post(f"/counter/d/add/send?delay={delay}", json=1), 400)
        _error(h.post("/counter/d/add/send?delay=\u0663s", json=1), 400)
        # Within the limit, a delay is taken.
        assert h.post("/counter/d/add/send?delay=P999999D", json=1).status_code == 202

        sent = h.post("/edges/wait/send").json()["invocationId"]
        awk = "awk_" + sent.removeprefix("inv_")
        for index in ("4294967296", "00", "01", "\u0663", "-1", "+1"):
            _error(h.post(f"/restate/awakeables/{awk}_{index}/resolve", json="v"), 404)
        _error(h.post(f"/restate/awakeables/{awk.upper()}_0/resolve", json="v"), 404)

        # A URL past what the HTTP parser takes: uvicorn answers it, in the same JSON shape.
        status, body = _raw_post(edges.port, f"/counter/{LONG}/add")
        assert status == 400 and body["code"] == 400 and "too long" in body["message"], body
        for raw in ("x%FEy", "x%FFy", "%C0%AF"):
            _error(h.post(f"/counter/{raw}/add", json=1), 400)
        for body in (b"NaN", b"Infinity", b"[-Infinity]", b'{"n": NaN}'):
            _error(h.post("/counter/j/add", content=body), 400)

        # A handler's own input: the SDK's edge, a TerminalError with a 400.
        message = _error(h.post("/edges/call_with_key", json=LONG), 400)
        assert "70000 bytes" in message
        # A failure's code that is no HTTP status is answered as a 500 that names it.
        for code in (0, 1000, 2**32 - 1, 2**70):
            message = _error(h.post("/edges/fail_with", json=code), 500)
            assert f"(code {code})" in message
        assert h.post("/edges/fail_with", json=418).status_code == 418

        # The partition goes on: keys answer, and the waiting handler can still be resolved.
        assert h.post("/counter/z/add", json=5).json() == 5
        assert h.post(f"/restate/awakeables/{awk}_0/resolve", json="v").status_code == 202
        assert h.get(f"/restate/invocation/{sent}/attach").json() == "v"
        assert h.get("/health").status_code == 200

    # The log it left replays: the restart serves at once, with the state it had.
    edges.kill9()
    edges.start()
    with httpx.Client(base_url=edges.url, timeout=30) as h:
        assert h.post("/counter/z/add", json=1).json() == 6
    assert "rejected" not in edges.log(), "an edge let a record through to the partition"
