"""The ``perdure`` command: wires workers and the ingress together; it holds no logic.

    perdure worker MODULE:APP --bootstrap HOST:PORT --state-dir DIR
    perdure ingress --bootstrap HOST:PORT --port PORT
    perdure admin --bootstrap HOST:PORT --port 9070   # admin API, runs the subscriptions
    perdure dev MODULE:APP           # local broker (if none given) + worker + ingress + admin
    perdure invocations ls|describe ID|cancel ID|kill ID   # operators, through the admin API
    perdure services ls, perdure state get SERVICE KEY, perdure subscriptions ls

Every flag also reads an environment variable: ``--bootstrap`` reads ``PERDURE_BOOTSTRAP``,
``--state-dir`` reads ``PERDURE_STATE_DIR``, and so on.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from perdure.engine import kafka_settings, log_format
from perdure.ingress.admin import cli as admin_cli


def _load_app(spec: str) -> Any:
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


def _event_loop(choice: str) -> str:
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


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", help="Kafka bootstrap address [PERDURE_BOOTSTRAP]")
    parser.add_argument("--cluster", help="prefix of topics and groups [PERDURE_CLUSTER]")
    parser.add_argument(
        "--partitions", type=int, help="log partitions, used at creation [PERDURE_PARTITIONS]"
    )
    parser.add_argument("--log-level", default=os.environ.get("PERDURE_LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("PERDURE_LOG_FORMAT", "text"),
        help="one JSON object per line for log pipelines [PERDURE_LOG_FORMAT]",
    )
    parser.add_argument(
        "--kafka-config",
        help="librdkafka settings for every Kafka client (SASL, SSL, any property): JSON, or "
        "@FILE of JSON [PERDURE_KAFKA_CONFIG]",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perdure", description="Durable execution on Kafka.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    worker = sub.add_parser("worker", help="run a partition worker hosting MODULE:APP")
    worker.add_argument("app", metavar="MODULE:APP")
    worker.add_argument("--state-dir", help="RocksDB stores [PERDURE_STATE_DIR]")
    worker.add_argument("--metrics-port", type=int, help="serve /metrics [PERDURE_METRICS_PORT]")
    worker.add_argument(
        "--session-timeout-ms", type=int, help="group session timeout [PERDURE_SESSION_TIMEOUT_MS]"
    )
    worker.add_argument(
        "--standby-replicas",
        type=int,
        help="warm copies of each partition kept by other workers [PERDURE_STANDBY_REPLICAS]",
    )
    _common(worker)

    ingress = sub.add_parser("ingress", help="run the HTTP ingress")
    ingress.add_argument("--port", type=int, help="HTTP port [PERDURE_PORT]")
    ingress.add_argument("--host", help="HTTP address [PERDURE_HOST]")
    ingress.add_argument(
        "--access-log", action="store_true", default=None, help="log requests [PERDURE_ACCESS_LOG]"
    )
    _common(ingress)

    admin = sub.add_parser("admin", help="run the admin API and the Kafka subscriptions")
    admin.add_argument("--port", type=int, help="HTTP port [PERDURE_ADMIN_PORT, else 9070]")
    admin.add_argument("--host", help="HTTP address [PERDURE_ADMIN_HOST]")
    _common(admin)

    dev = sub.add_parser(
        "dev", help="local broker + a worker, the ingress and the admin, for trying out"
    )
    dev.add_argument("app", metavar="MODULE:APP")
    dev.add_argument("--port", type=int, help="HTTP port [PERDURE_PORT, else 8080]")
    dev.add_argument("--metrics-port", type=int, help="worker /metrics [PERDURE_METRICS_PORT]")
    dev.add_argument(
        "--admin-port", type=int, help="admin API, 0: none [PERDURE_ADMIN_PORT, else 9070]"
    )
    dev.add_argument(
        "--state-dir",
        help="RocksDB stores [PERDURE_STATE_DIR, else .perdure/dev-state]; with --embedded, "
        "the log file [else .perdure/embedded]",
    )
    dev.add_argument(
        "--embedded",
        action="store_true",
        help="no broker, no Java: the log and the worker in the ingress's process",
    )
    _common(dev)
    admin_cli.add_commands(sub)
    return parser


def _run_worker(args: argparse.Namespace) -> int:
    from perdure.partitions.config import WorkerSettings
    from perdure.partitions.errors import PartitionError
    from perdure.partitions.kafka.worker import Worker

    settings = WorkerSettings.from_env(
        bootstrap=args.bootstrap,
        cluster=args.cluster,
        partitions=args.partitions,
        state_dir=Path(args.state_dir) if args.state_dir else None,
        metrics_port=args.metrics_port,
        session_timeout_ms=args.session_timeout_ms,
        standby_replicas=args.standby_replicas,
    )
    app = _load_app(args.app)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await (await Worker.open(app, settings)).run(stop)

    try:
        loop_factory = asyncio.new_event_loop
        if _event_loop(settings.event_loop) == "uvloop":
            import uvloop

            loop_factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main())
    except PartitionError as err:
        logging.getLogger("perdure").error("worker failed: %s", err)
        return 1
    return 0


def _serve(
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
        loop=_event_loop(event_loop),
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


def _run_ingress(args: argparse.Namespace) -> int:
    from perdure.ingress.app import Ingress, create_app
    from perdure.ingress.config import IngressSettings

    settings = IngressSettings.from_env(
        bootstrap=args.bootstrap,
        cluster=args.cluster,
        partitions=args.partitions,
        port=args.port,
        host=args.host,
        access_log=args.access_log,
    )
    ingress = Ingress(settings)

    def stopping() -> None:
        ingress.stopping = True

    _serve(
        create_app(settings, ingress),
        settings.host,
        settings.port,
        settings.event_loop,
        access_log=settings.access_log,
        keep_alive_s=settings.keep_alive_s,
        log_format=args.log_format,
        grace_s=settings.shutdown_grace_s,
        on_term=stopping,
        delay_s=settings.shutdown_delay_s,
    )
    return 0


def _run_admin(args: argparse.Namespace) -> int:
    from perdure.ingress.admin.app import create_admin_app
    from perdure.ingress.config import AdminSettings

    settings = AdminSettings.from_env(
        bootstrap=args.bootstrap,
        cluster=args.cluster,
        partitions=args.partitions,
        port=args.port,
        host=args.host,
    )
    _serve(
        create_admin_app(settings),
        settings.host,
        settings.port,
        settings.event_loop,
        log_format=args.log_format,
    )
    return 0


_RESTARTS = 5
"""A child that dies more often than this within a minute stops ``perdure dev``."""


def _say(message: str) -> None:
    print(f"perdure dev: {message}", file=sys.stderr, flush=True)


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _local_broker() -> str | None:
    """The address of the broker in ``.perdure/kafka`` (deploy/up.sh's), started if needed."""
    env = dict(os.environ)
    env.setdefault("KAFKA_DATA_DIR", str(Path.cwd() / ".perdure" / "kafka"))
    broker = Path(__file__).resolve().parent / "deploy" / "kafka" / "broker.sh"
    out = subprocess.run(["bash", str(broker), "start"], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        _say(
            "no local broker; if a Kafka broker already runs, pass it: "
            "perdure dev MODULE:APP --bootstrap HOST:PORT"
        )
        return None
    return out.stdout.strip().splitlines()[-1]


def _run_dev(args: argparse.Namespace) -> int:
    """A small supervisor: a worker and an ingress, each restarted if it dies, with a reason.

    Children that keep dying (more than ``_RESTARTS`` times in a minute) stop it with exit code
    1; so does a port that is taken, before anything starts.
    """
    port = args.port or int(os.environ.get("PERDURE_PORT", "8080"))
    if _port_taken(port):
        _say(f"port {port} is in use (another perdure dev?); stop it or pick one: --port 8081")
        return 1
    if args.embedded:
        return _run_embedded(args, port)
    admin_port = args.admin_port
    if admin_port is None:
        admin_port = int(os.environ.get("PERDURE_ADMIN_PORT", "9070"))
    if admin_port and _port_taken(admin_port):
        _say(f"admin port {admin_port} is in use; pick another (--admin-port 9071) or 0 for none")
        return 1
    bootstrap = args.bootstrap or os.environ.get("PERDURE_BOOTSTRAP") or _local_broker()
    if bootstrap is None:
        return 1
    state_dir = args.state_dir or os.environ.get("PERDURE_STATE_DIR") or ".perdure/dev-state"
    common = ["--bootstrap", bootstrap, "--log-level", args.log_level]
    common += ["--log-format", args.log_format]
    if args.cluster:
        common += ["--cluster", args.cluster]
    if args.partitions:
        common += ["--partitions", str(args.partitions)]
    me = [sys.executable, "-m", "perdure"]
    worker_args = [*me, "worker", args.app, "--state-dir", state_dir, *common]
    metrics = args.metrics_port or os.environ.get("PERDURE_METRICS_PORT")
    if metrics:
        worker_args += ["--metrics-port", str(metrics)]
    commands = {"worker": worker_args, "ingress": [*me, "ingress", "--port", str(port), *common]}
    if admin_port:
        commands["admin"] = [*me, "admin", "--port", str(admin_port), *common]

    def on_term(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt  # stop the children below, as for Ctrl-C

    signal.signal(signal.SIGTERM, on_term)
    children = {name: subprocess.Popen(cmd) for name, cmd in commands.items()}
    deaths: dict[str, list[float]] = {name: [] for name in commands}
    admin_url = f", admin http://127.0.0.1:{admin_port}" if admin_port else ""
    _say(f"broker {bootstrap}, ingress http://127.0.0.1:{port}{admin_url}, app {args.app}")
    code = 0
    try:
        while True:
            time.sleep(0.5)
            for name, child in children.items():
                status = child.poll()
                if status is None:
                    continue
                now = time.monotonic()
                deaths[name] = [t for t in deaths[name] if now - t < 60] + [now]
                if len(deaths[name]) > _RESTARTS:
                    _say(f"the {name} keeps exiting (code {status}); stopping (see its log above)")
                    raise SystemExit(1)
                _say(f"the {name} exited with code {status}; starting it again")
                children[name] = subprocess.Popen(commands[name])
    except KeyboardInterrupt:
        pass
    except SystemExit as stop:
        code = int(stop.code or 0)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        for child in children.values():
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
    return code


def _run_embedded(args: argparse.Namespace, port: int) -> int:
    """``perdure dev --embedded``: the ingress, its log and the worker in this one process."""
    from perdure.ingress.app import Ingress, create_app
    from perdure.ingress.config import IngressSettings
    from perdure.partitions.config import WorkerSettings
    from perdure.partitions.embedded import EmbeddedLog

    app = _load_app(args.app)
    folder = Path(args.state_dir or os.environ.get("PERDURE_STATE_DIR") or ".perdure/embedded")
    settings = IngressSettings.from_env(port=port)
    ingress = Ingress(settings)
    local = EmbeddedLog(app, folder, WorkerSettings.from_env().suspend_after_s)
    ingress.use_local_log(local)
    _say(f"embedded log in {folder}, ingress http://127.0.0.1:{port}, app {args.app}")
    _serve(
        create_app(settings, ingress),
        settings.host,
        settings.port,
        settings.event_loop,
        log_format=args.log_format,
        # It leads once the socket listens: a step that blocks the loop when it runs again
        # then holds calls in the backlog (they wait) instead of refusing connections.
        on_listening=local.lead,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``perdure`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command in admin_cli.COMMANDS:
        return admin_cli.run(args)
    try:
        log_format.configure(str(args.log_level), str(args.log_format))
    except ValueError as err:
        raise SystemExit(f"perdure: {err} (PERDURE_LOG_FORMAT)") from None
    if args.kafka_config is not None:
        os.environ[kafka_settings.ENV] = args.kafka_config  # its children read it too
    try:
        kafka_settings.extra()
    except kafka_settings.KafkaConfigError as err:
        raise SystemExit(f"perdure: {err}") from None
    if args.command == "worker":
        return _run_worker(args)
    if args.command == "ingress":
        return _run_ingress(args)
    if args.command == "admin":
        return _run_admin(args)
    return _run_dev(args)


if __name__ == "__main__":
    sys.exit(main())
