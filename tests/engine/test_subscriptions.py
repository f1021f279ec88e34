"""Subscriptions: URIs, options, ids and the stored form, without a broker."""

from __future__ import annotations

import pytest

from perdure.engine import subscriptions as subs
from perdure.engine.subscriptions import InvalidSubscription, Sink, Source, Subscription


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("kafka://default/orders", True),
        ("kafka://events-eu/payments.v1", True),
        ("kafka://default", False),
        ("kafka:///orders", False),
        ("http://default/orders", False),
        ("kafka://default/a/b", False),
    ],
)
def test_sources(text: str, ok: bool) -> None:
    if ok:
        assert subs.parse_source(text).uri == text
    else:
        with pytest.raises(InvalidSubscription, match="kafka://<cluster>/<topic>"):
            subs.parse_source(text)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({}, None),
        ({"ordering": "partition", "max_in_flight": 10, "auto.offset.reset": "latest"}, None),
        ({"ordering": "random"}, "ordering"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_in_flight": "many"}, "max_in_flight"),
        ({"group.id": "x"}, "set by Perdure"),
        ({"colour": "blue"}, "unknown option"),
        ({"dead_letter_topic": "bad topic"}, "not a topic name"),
        ({"fetch.min.bytes": [1]}, "string or a number"),
    ],
)
def test_options(options: dict[str, object], error: str | None) -> None:
    if error is None:
        checked = subs.check_options(options)
        assert all(isinstance(v, str) for v in checked.values())
    else:
        with pytest.raises(InvalidSubscription, match=error):
            subs.check_options(options)


def test_the_same_pair_is_the_same_subscription_and_the_form_round_trips() -> None:
    a = subs.subscription_id(Source("default", "orders"), Sink("payments", "pay"))
    assert a == subs.subscription_id(Source("default", "orders"), Sink("payments", "pay"))
    assert a != subs.subscription_id(Source("default", "orders"), Sink("payments", "refund"))
    assert a.startswith("sub_") and len(a) == 30
    sub = Subscription(a, Source("default", "orders"), Sink("payments", "pay"), {"x.y": "1"}, True)
    assert subs.decode(subs.encode(sub)) == sub
    with pytest.raises(InvalidSubscription, match="format"):
        subs.decode(b'{"v": 99}')
    with pytest.raises(InvalidSubscription):
        subs.decode(b"not json")
    assert subs.record_key(a, "orders", 3, 17) == f"{a}/orders/3/17"
