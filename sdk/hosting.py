"""What the hosts of handlers use beyond the handler API: workers, the TestRuntime, the simulator.

``perdure`` (and :mod:`perdure.sdk`) is the API handlers are written with. The code that runs
them needs a little more, and takes it from here only (an import-linter contract holds
``partitions`` and ``ingress`` to ``perdure.sdk`` and this module): what a decorated function
says about itself, the id a call gets, how values are (de)serialized, the clock ``ctx.time()``
reads, and the retry policy a handler has by default.
"""

from __future__ import annotations

from perdure.sdk.call_targets import check_key, invocation_id_for
from perdure.sdk.clock import restore as restore_clock
from perdure.sdk.clock import use as use_clock
from perdure.sdk.options import DEFAULT_RETRY_POLICY
from perdure.sdk.serde import decode, encode
from perdure.sdk.service import HandlerDef

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "HandlerDef",
    "check_key",
    "decode",
    "encode",
    "invocation_id_for",
    "restore_clock",
    "use_clock",
]
