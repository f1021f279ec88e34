"""Handler registration is checked when the decorator runs."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from perdure.sdk import Context, Endpoint, RetryPolicy, RunOptions, Service, Subscribe, serde
from perdure.sdk.errors import HandlerDefinitionError


@dataclasses.dataclass
class In:
    x: int


def test_handler_records_its_types_and_name() -> None:
    svc = Service("svc")

    @svc.handler()
    async def typed(ctx: Context, value: In) -> list[int]:
        return [value.x]

    @svc.handler(name="renamed")
    async def no_input(ctx: Context) -> None:
        return None

    h = svc.handlers["typed"]
    assert (h.takes_input, h.input_type, h.output_type) == (True, In, list[int])
    n = svc.handlers["renamed"]
    assert (n.takes_input, n.output_type) == (False, None)


@pytest.mark.parametrize(
    "source",
    [
        "def f(ctx): ...",  # not async
        "async def f(): ...",  # no context
        "async def f(ctx, a, b): ...",  # too many inputs
        "async def f(ctx, *, a): ...",  # keyword-only input
    ],
)
def test_bad_signatures_fail_at_decoration(source: str) -> None:
    ns: dict[str, object] = {}
    exec(source, ns)
    with pytest.raises(HandlerDefinitionError):
        Service("svc").handler()(ns["f"])  # type: ignore[type-var]


def test_duplicate_and_reserved_names_are_refused() -> None:
    svc = Service("svc")

    async def h(ctx: Context) -> None: ...

    svc.handler()(h)
    with pytest.raises(HandlerDefinitionError):
        svc.handler()(h)
    with pytest.raises(HandlerDefinitionError):
        svc.handler(name="send")(h)
    with pytest.raises(HandlerDefinitionError):
        Service("a/b")
    with pytest.raises(HandlerDefinitionError):
        Endpoint([Service("x"), Service("x")])


def test_endpoint_manifest_lists_services_and_handlers() -> None:
    svc = Service("svc")

    @svc.handler()
    async def h(ctx: Context) -> None: ...

    app = Endpoint([svc])
    handlers = {
        "h": {
            "kind": None,
            "input": None,
            "output": {},
            "doc": "",
            "raw_input": False,
            "subscriptions": [],
        }
    }
    assert app.manifest() == [{"name": "svc", "kind": "service", "handlers": handlers}]
    assert app.handler("svc", "h") is svc.handlers["h"]
    assert app.handler("svc", "nope") is None


def test_subscribe_declares_topics_in_the_manifest() -> None:
    svc = Service("svc")

    @svc.handler(subscribe="orders")
    async def one(ctx: Context, order: dict) -> None: ...

    @svc.handler(subscribe=[Subscribe("a", options={"max_in_flight": 5}), "b"])
    async def two(ctx: Context, payload: bytes) -> None: ...

    handlers = Endpoint([svc]).manifest()[0]["handlers"]
    assert handlers["one"]["subscriptions"] == [{"source": "kafka://default/orders", "options": {}}]
    assert handlers["one"]["raw_input"] is False
    assert [s["source"] for s in handlers["two"]["subscriptions"]] == [
        "kafka://default/a",
        "kafka://default/b",
    ]
    assert handlers["two"]["subscriptions"][0]["options"] == {"max_in_flight": 5}
    assert handlers["two"]["raw_input"] is True


@pytest.mark.parametrize(
    ("given", "words"),
    [
        (Subscribe("t", options={"ordering": "sideways"}), "ordering"),
        (Subscribe("t", options={"group.id": "g"}), "set by Perdure"),
        (Subscribe("a/b"), "topic names"),
        (42, "topic names"),
    ],
)
def test_subscribe_refuses_bad_declarations_at_import(given: object, words: str) -> None:
    svc = Service("svc")
    with pytest.raises(HandlerDefinitionError, match=words):
        svc.handler(subscribe=given)  # type: ignore[arg-type]


def test_a_bytes_input_is_the_raw_payload() -> None:
    assert serde.decode(b"\x00not json", bytes) == b"\x00not json"


def test_retry_policy_backs_off_exponentially_to_its_cap() -> None:
    p = RetryPolicy(
        initial_interval=timedelta(milliseconds=100), factor=2, max_interval=timedelta(seconds=1)
    )
    assert [p.delay_after(n).total_seconds() for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.8, 1.0]
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    assert RunOptions().policy() is None
    assert RunOptions(max_attempts=3).policy() == RetryPolicy(
        3, timedelta(milliseconds=50), 2.0, timedelta(seconds=10)
    )
