"""The outbox's byte format: destination headers and forward positions."""

from __future__ import annotations

import pytest

from perdure.engine import forwarding
from perdure.engine.model import OutgoingRecord


def test_the_destination_rides_first_and_comes_off_intact() -> None:
    record = OutgoingRecord(
        "paid", b"{}", b"k", (("a", b"1"), ("perdure.publish.id", b"i:2")), "events"
    )
    headers = forwarding.outbox_headers(record)
    assert headers[:2] == [
        ("perdure.forward.cluster", b"events"),
        ("perdure.forward.topic", b"paid"),
    ]
    assert forwarding.destination(headers) == (
        "events",
        "paid",
        [("a", b"1"), ("perdure.publish.id", b"i:2")],
    )


@pytest.mark.parametrize(
    "headers",
    [[], [("perdure.forward.topic", b"t"), ("perdure.forward.cluster", b"c")], [("x", b"")]],
)
def test_an_outbox_record_without_its_destination_is_refused(headers: list) -> None:
    with pytest.raises(forwarding.OutboxFormatError):
        forwarding.destination(headers)


def test_positions_round_trip_and_refuse_other_versions() -> None:
    assert forwarding.decode_position(forwarding.encode_position(42)) == 42
    assert forwarding.position_key(3) == b"3"
    for bad in (b'{"v": 2, "next": 1}', b"nope", b"[]", b'{"v": 1}'):
        with pytest.raises(forwarding.OutboxFormatError):
            forwarding.decode_position(bad)
