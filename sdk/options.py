"""Option bundles: retry policies for handlers and ``ctx.run`` steps, topic subscriptions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff between attempts.

    The delay before retry ``n`` (1-based) is ``initial_interval * factor ** (n - 1)``, capped at
    ``max_interval``. After ``max_attempts`` attempts the failure becomes terminal.

    Defaults (documented in the README): 100 ms initial interval, factor 2, 10 s cap, 20 attempts
    — about two and a half minutes of retrying before an invocation fails for good.
    """

    max_attempts: int = 20
    initial_interval: timedelta = timedelta(milliseconds=100)
    factor: float = 2.0
    max_interval: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.factor < 1:
            raise ValueError("factor must be at least 1")

    def delay_after(self, attempt: int) -> timedelta:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        seconds = self.initial_interval.total_seconds() * self.factor ** max(attempt - 1, 0)
        return timedelta(seconds=min(seconds, self.max_interval.total_seconds()))


DEFAULT_RETRY_POLICY = RetryPolicy()


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How ``ctx.run`` retries its action before journaling a terminal failure.

    With ``max_attempts`` left as None, a failing action fails the whole attempt of the handler,
    which is retried under the handler's :class:`RetryPolicy` (replaying the steps already
    journaled). With ``max_attempts`` set, the step retries in place and, after the last attempt,
    journals a terminal failure that ``ctx.run`` raises as :class:`~sdk.errors.TerminalError`.
    """

    max_attempts: int | None = None
    initial_interval: timedelta = timedelta(milliseconds=50)
    factor: float = 2.0
    max_interval: timedelta = timedelta(seconds=10)

    def policy(self) -> RetryPolicy | None:
        """The equivalent retry policy, or None when the step defers to the handler's."""
        if self.max_attempts is None:
            return None
        return RetryPolicy(self.max_attempts, self.initial_interval, self.factor, self.max_interval)


@dataclass(frozen=True, slots=True)
class Subscribe:
    """A Kafka topic whose records invoke the handler (``@svc.handler(subscribe=...)``).

    ``@svc.handler(subscribe="orders")`` is ``Subscribe("orders")``: the topic ``orders`` of
    the Kafka cluster Perdure runs on (``default``). ``options`` are those of the admin API's
    ``POST /subscriptions``: ``ordering``, ``max_in_flight``, ``dead_letter_topic`` and
    librdkafka consumer settings such as ``auto.offset.reset``. The admin process creates the
    subscription when it first sees a worker hosting the handler.
    """

    topic: str
    cluster: str = "default"
    options: Mapping[str, str | int] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The subscription's source URI."""
        return f"kafka://{self.cluster}/{self.topic}"
