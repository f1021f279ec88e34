"""``--log-format json``: one JSON object per line, the invocation id lifted out."""

from __future__ import annotations

import json
import logging

from perdure.process.log_format import JsonFormatter


def test_a_line_is_one_json_object_with_the_invocation_id() -> None:
    record = logging.LogRecord(
        "perdure.invoker", logging.WARNING, __file__, 1,
        "invocation %s attempt 1 failed", ("inv_abcdefghijklmnop0123456789abcdef",), None,
    )  # fmt: skip
    doc = json.loads(JsonFormatter().format(record))
    assert doc["message"] == "invocation inv_abcdefghijklmnop0123456789abcdef attempt 1 failed"
    assert doc["invocation_id"] == "inv_abcdefghijklmnop0123456789abcdef"
    assert doc["level"] == "WARNING" and doc["logger"] == "perdure.invoker"
    assert doc["ts"].endswith("+00:00")


def test_a_traceback_stays_inside_its_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line and "RuntimeError: boom" in json.loads(line)["exception"]
