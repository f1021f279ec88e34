"""What a failed attempt becomes: a retry after its policy's delay, a failure, or a pause.

The record it returns (:class:`AttemptFailed` or :class:`Complete`) is what the invoker appends;
the log lines and metrics of the failure are written here.
"""

from __future__ import annotations

import logging
import traceback
from datetime import timedelta

from perdure.engine.model import Failure
from perdure.engine.records import AttemptFailed, Command, Complete
from perdure.partitions.handlers import invocation_log
from perdure.partitions.handlers.attempts import Attempt
from perdure.partitions.metrics import WorkerMetrics
from perdure.partitions.remote.retry import PAUSED_MS
from perdure.sdk import RetryPolicy

log = logging.getLogger("perdure.invoker")

_MS = timedelta(milliseconds=1)
ERROR_TEXT = 4000
"""How much of a failed attempt's traceback (its tail) goes into the log for operators."""


def failed_attempt(
    attempt: Attempt,
    metrics: WorkerMetrics,
    retry: RetryPolicy,
    err: Exception,
    pause: bool = False,
    retry_in_ms: int | None = None,
) -> Command:
    """What a failed attempt becomes: a retry after the policy's delay (``retry_in_ms``
    instead, if given), or after its last attempt a failure, or with ``pause`` a retry
    that waits for an operator (partitions/remote/retry.py)."""
    start = attempt.start
    attempts_made = start.attempt + 1
    trace = "".join(traceback.format_exception(err))
    t = start.target
    if attempts_made >= retry.max_attempts and pause:
        invocation_log.event(
            "paused",
            start.invocation_id,
            "attempt %d of %d failed; paused until an operator resumes it "
            "(PATCH /invocations/%s/retry-now) or cancels it: %r",
            attempts_made,
            retry.max_attempts,
            start.invocation_id,
            err,
            level=logging.WARNING,
        )
        metrics.attempts_failed.labels(t.service, t.handler).inc()
        # Its last line is what operators see in lists: say how to resume.
        note = f"\npaused after {attempts_made} attempts: PATCH /invocations/{{id}}/retry-now"
        return AttemptFailed(
            start.invocation_id, start.attempt, trace[-ERROR_TEXT:] + note, PAUSED_MS
        )
    if attempts_made >= retry.max_attempts:
        metrics.invocations_completed.labels(t.service, t.handler, "failed").inc()
        log.error(
            "invocation %s (%s) failed for good after %d attempts:\n%s",
            start.invocation_id,
            start.target,
            attempts_made,
            trace,
        )
        return Complete(
            start.invocation_id,
            start.attempt,
            failure=Failure(500, f"failed after {attempts_made} attempts: {err!r}"),
        )
    delay = retry.delay_after(attempts_made)
    if retry_in_ms is not None:
        delay = timedelta(milliseconds=retry_in_ms)
    retry_in = f"attempt {attempts_made} failed, retrying in {delay.total_seconds():.2f}s"
    if attempts_made == 1:
        # The first failure with its stack; later ones of the same invocation in a line.
        detail = f"{retry_in} (up to {retry.max_attempts} attempts):\n{trace}"
        invocation_log.event(
            "retry-scheduled", start.invocation_id, "%s", detail, level=logging.WARNING
        )
    else:
        invocation_log.event("retry-scheduled", start.invocation_id, "%s: %r", retry_in, err)
    metrics.attempts_failed.labels(t.service, t.handler).inc()
    # The error with its stack, for operators (the tail: where it was raised, and what).
    return AttemptFailed(start.invocation_id, start.attempt, trace[-ERROR_TEXT:], int(delay / _MS))
