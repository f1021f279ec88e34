"""Running a Perdure process's pieces: the user's app by name, its event loop, its HTTP server."""

from __future__ import annotations

import importlib
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any


def load_app(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"perdure: expected MODULE:APP, got {spec!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise SystemExit(f"perdure: cannot import {module_name!r}: {err}") from err
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SystemExit(f"perdure: {module_name!r} has no attribute {attr!r}") from None


_LOOPS = ("auto", "uvloop", "asyncio")


def event_loop_name(choice: str) -> str:
    """The event loop a command runs on: ``uvloop`` where installed (``auto``), else ``asyncio``."""
    if choice not in _LOOPS:
        raise SystemExit(f"perdure: PERDURE_EVENT_LOOP must be one of {_LOOPS}, got {choice!r}")
    if choice == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if choice == "uvloop":
            raise SystemExit("perdure: PERDURE_EVENT_LOOP=uvloop is not installed") from None
        return "asyncio"
    return "uvloop"


def serve(
    app: Any,
    host: str,
    port: int,
    event_loop: str,
    access_log: bool = False,
    keep_alive_s: int = 5,
    log_format: str = "text",
    grace_s: int = 5,
    on_term: Callable[[], None] | None = None,
    delay_s: float = 0.0,
    on_listening: Callable[[], None] | None = None,
) -> None:
    """Runs ``app`` under uvicorn. On the first SIGTERM (or Ctrl-C), ``on_term`` runs and the
    server goes on for ``delay_s`` before uvicorn's own shutdown (stop listening, answer what
    it holds for up to ``grace_s``); a second signal skips the delay. ``on_listening`` runs on
    the server's loop once its socket accepts connections."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from perdure.ingress.http_protocol import protocol_class

    config = uvicorn.Config(
        app,
        # In JSON, uvicorn's own lines go through the root handler too (log_config=None).
        log_config=None if log_format == "json" else LOGGING_CONFIG,
        host=host,
        port=port,
        log_level="info" if access_log else "warning",
        access_log=access_log,
        loop=event_loop_name(event_loop),
        timeout_graceful_shutdown=grace_s,
        timeout_keep_alive=keep_alive_s,
        http=protocol_class(),  # bad HTTP answered in the JSON error shape too
    )

    class Server(uvicorn.Server):
        delayed: threading.Timer | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if on_listening is not None and not self.should_exit:
                on_listening()

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.delayed is None and delay_s > 0 and not self.should_exit:
                if on_term is not None:
                    on_term()
                logging.getLogger("perdure").info(
                    "shutting down in %.1fs (readiness says 503 meanwhile)", delay_s
                )
                self.delayed = threading.Timer(delay_s, super().handle_exit, (sig, frame))
                self.delayed.daemon = True
                self.delayed.start()
                return
            super().handle_exit(sig, frame)

    Server(config).run()
