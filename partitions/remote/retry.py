"""How a failed attempt of a deployment's handler is retried: the policy its discovery sets.

A Restate SDK's service or handler may set a retry policy (discovery v4 ``retryPolicy*``
fields, recorded with the deployment: engine/deployments.py ``RetrySettings``). Fields it leaves
unset take Perdure's defaults (sdk ``RetryPolicy``). ``maxAttempts`` counts every attempt, the
first included. Once the last one failed, ``KILL`` (and no setting) fails the invocation like an
in-process handler; ``PAUSE`` keeps it, waiting for an operator: it is rescheduled
:data:`PAUSED_MS` ahead, so ``PATCH /invocations/{id}/retry-now`` resumes it (one more attempt,
then paused again if that fails) and ``DELETE`` cancels it. A delay the SDK asks for in its error
(``next_retry_delay``: a ``ctx.run`` with its own retry policy) replaces the policy's for the
next retry only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from perdure.engine.deployments import Deployment
from perdure.engine.model import Target
from perdure.sdk import RetryPolicy
from perdure.sdk.hosting import DEFAULT_RETRY_POLICY

PAUSED_MS = 10 * 365 * 24 * 3600 * 1000
"""How far ahead a paused invocation's next attempt is put: until an operator resumes it."""


@dataclass(frozen=True, slots=True)
class RemoteRetry:
    """A remote handler's retry policy, and what happens after its last attempt."""

    policy: RetryPolicy
    pause: bool = False


def remote_retry(deployment: Deployment, target: Target) -> RemoteRetry:
    """The retry policy of ``target`` on ``deployment``, over Perdure's defaults."""
    given = deployment.retry_for(target.service, target.handler)
    d = DEFAULT_RETRY_POLICY
    policy = RetryPolicy(
        max_attempts=d.max_attempts if given.attempts is None else given.attempts,
        initial_interval=d.initial_interval
        if given.initial_ms is None
        else timedelta(milliseconds=given.initial_ms),
        factor=d.factor if given.factor is None else given.factor,
        max_interval=d.max_interval
        if given.max_ms is None
        else timedelta(milliseconds=given.max_ms),
    )
    return RemoteRetry(policy, pause=given.on_max == "PAUSE")
