"""engine.kafka_settings: the heartbeat that bounds a hand-over; PERDURE_KAFKA_CONFIG parsing."""

from __future__ import annotations

import pytest

from perdure.process.kafka_settings import KafkaConfigError, heartbeat_interval_ms, parse


@pytest.mark.parametrize(
    ("session_ms", "heartbeat_ms"),
    [
        (300, 100),  # never below 100 ms
        (1200, 200),  # a sixth of short timeouts
        (6000, 1000),  # the worker's default
        (45000, 1000),  # long timeouts must not slow hand-overs (was 7.5 s)
    ],
)
def test_heartbeat_is_a_sixth_of_the_session_within_100_ms_and_1_s(
    session_ms: int, heartbeat_ms: int
) -> None:
    assert heartbeat_interval_ms(session_ms) == heartbeat_ms


def test_parse_keeps_scalars_as_librdkafka_strings() -> None:
    assert parse('{"linger.ms": 5, "socket.nagle.disable": true}') == {
        "linger.ms": "5",
        "socket.nagle.disable": "true",
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{", "is not JSON"),
        ("[1]", "must be a JSON object"),
        ('{"acks": "1"}', "set by Perdure itself"),
        ('{"x": [1]}', "must be a string, number or boolean"),
        ("@/nonexistent/kafka.json", "No such file"),
    ],
)
def test_parse_refuses_what_it_cannot_use_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(KafkaConfigError, match=says):
        parse(text)
