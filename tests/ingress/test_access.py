"""The bearer token and the body cap of the HTTP faces, on a bare ASGI app (no broker)."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from perdure.ingress.access import AccessGuard


def guarded(token: str, max_body: int = 0) -> AccessGuard:
    async def hello(_request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(
        routes=[
            Route("/x", hello, methods=["GET", "POST"]),
            Route("/health", hello),
            Route("/health/live", hello),
        ]
    )
    return AccessGuard(app, token, max_body, "the test API")


def ask(app: AccessGuard, method: str, path: str, **kw: object) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path, **kw)  # type: ignore[arg-type]

    return asyncio.run(go())


def test_a_token_is_required_when_one_is_set() -> None:
    app = guarded("s3cret")
    r = ask(app, "GET", "/x")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["message"] == "an Authorization: Bearer token is required for the test API"
    r = ask(app, "GET", "/x", headers={"authorization": "Bearer nope"})
    assert r.status_code == 401 and "wrong bearer token" in r.json()["message"]
    assert ask(app, "GET", "/x", headers={"authorization": "Bearer s3cret"}).text == "hello"
    # Probes need none.
    assert ask(app, "GET", "/health").status_code == 200
    assert ask(app, "GET", "/health/live").status_code == 200


def test_no_token_set_leaves_the_api_open() -> None:
    assert ask(guarded(""), "GET", "/x").status_code == 200


def test_a_body_over_the_cap_is_413() -> None:
    app = guarded("", max_body=10)
    assert ask(app, "POST", "/x", content=b"x" * 10).status_code == 200
    r = ask(app, "POST", "/x", content=b"x" * 11)
    assert r.status_code == 413 and "over 10 bytes" in r.json()["message"]
