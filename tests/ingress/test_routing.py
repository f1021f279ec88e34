"""Paths to targets, as Restate's clients write them (no broker)."""

from __future__ import annotations

import pytest

from perdure.engine.model import HandlerKind, Target
from perdure.ingress.errors import IngressError
from perdure.ingress.routing import parse_delay, route, split_path

SCOPED_K = "\x1ft 1\x1fk"  # key k in scope "t 1" (engine.scopes)
SERVICES = {
    "greeter": {"kind": "service", "handlers": {"greet": {}}},
    "counter": {"kind": "object", "handlers": {"add": {}, "get": {"kind": "shared"}}},
    "signup": {"kind": "workflow", "handlers": {"run": {"kind": "workflow"}, "verify": {}}},
}


def go(raw: bytes) -> tuple[Target, HandlerKind, bool]:
    r = route(split_path(raw), SERVICES)
    return r.target, r.handler_kind, r.send


@pytest.mark.parametrize(
    ("raw", "target", "send"),
    [
        (b"/greeter/greet", Target("greeter", "greet"), False),
        (b"/greeter/greet/send", Target("greeter", "greet"), True),
        (b"/counter/a%2Fb/add", Target("counter", "add", "a/b"), False),
        (b"/counter//add", Target("counter", "add", ""), False),
        (b"/counter/add", Target("counter", "add", ""), False),
        (b"/counter/%20x%25/add/send", Target("counter", "add", " x%"), True),
        (b"/restate/call/counter/k/add", Target("counter", "add", "k"), False),
        (b"/restate/send/greeter/greet", Target("greeter", "greet"), True),
        (b"/restate/send/signup/s%2F1/run", Target("signup", "run", "s/1"), True),
        (b"/greeter/greet/", Target("greeter", "greet"), False),
        (b"/restate/scope/t1/call/greeter/greet", Target("greeter", "greet"), False),
        (
            b"/restate/scope/t%201/send/counter/k/add",
            Target("counter", "add", "\x1ft 1\x1fk"),
            True,
        ),
    ],
)
def test_paths_reach_their_target(raw: bytes, target: Target, send: bool) -> None:
    got, _, sent = go(raw)
    assert (got, sent) == (target, send)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"/nope/greet", 404),
        (b"/counter/nope", 400),
        (b"/greeter/k/greet", 400),
        (b"/restate/nope/greeter/greet", 404),
        (b"/counter/k/nope", 404),
    ],
)
def test_bad_paths_say_why(raw: bytes, status: int) -> None:
    with pytest.raises(IngressError) as err:
        go(raw)
    assert err.value.status == status


@pytest.mark.parametrize(
    ("text", "ms"),
    [("1000", 1000), ("10s", 10_000), ("1m30s", 90_000), ("500ms", 500), ("PT2S", 2000)],
)
def test_delays(text: str, ms: int) -> None:
    assert parse_delay(text) == ms
