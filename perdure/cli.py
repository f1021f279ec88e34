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
import logging
import os
import signal
import sys
from pathlib import Path

from perdure import dev
from perdure.ingress.admin import cli as admin_cli
from perdure.pool import supervisor
from perdure.process import kafka_settings, log_format
from perdure.process.settings import ProcessSettings, SettingsError
from perdure.serving import event_loop_name, load_app, serve


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", help="Kafka bootstrap address [PERDURE_BOOTSTRAP]")
    parser.add_argument("--cluster", help="prefix of topics and groups [PERDURE_CLUSTER]")
    parser.add_argument(
        "--partitions", type=int, help="log partitions, used at creation [PERDURE_PARTITIONS]"
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ... [PERDURE_LOG_LEVEL]")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
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
        "--processes",
        type=int,
        help="member processes, each leading its share of the partitions; 0: one per core "
        "[PERDURE_WORKER_PROCESSES, else 0]",
    )
    worker.add_argument("--pool-parent", type=int, help=argparse.SUPPRESS)
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
        worker_processes=args.processes,
    )
    members = supervisor.processes_for(settings.worker_processes)
    if args.pool_parent is not None:
        supervisor.follow_parent(args.pool_parent)
    elif members > 1:
        return supervisor.WorkerPool(
            supervisor.member_argv(args.argv),
            members,
            Path(settings.state_dir),
            settings.worker_name,
            settings.metrics_port,
            settings.drain_timeout_s,
        ).run()
    app = load_app(args.app)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await (await Worker.open(app, settings)).run(stop)

    try:
        loop_factory = asyncio.new_event_loop
        if event_loop_name(settings.event_loop) == "uvloop":
            import uvloop

            loop_factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main())
    except PartitionError as err:
        logging.getLogger("perdure").error("worker failed: %s", err)
        return 1
    return 0


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

    serve(
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
    serve(
        create_admin_app(settings),
        settings.host,
        settings.port,
        settings.event_loop,
        log_format=args.log_format,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``perdure`` command."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.argv = list(argv)  # a worker pool starts its members with it
    if args.command is None:
        parser.print_help()
        return 0
    if args.command in admin_cli.COMMANDS:
        return admin_cli.run(args)
    try:
        return _run(args)
    except SettingsError as err:
        raise SystemExit(f"perdure: {err}") from None


def _run(args: argparse.Namespace) -> int:
    process = ProcessSettings.from_env(log_level=args.log_level, log_format=args.log_format)
    # The children of perdure dev are given what this process read.
    args.log_level, args.log_format = process.log_level, process.log_format
    try:
        log_format.configure(process.log_level, process.log_format)
    except ValueError as err:
        raise SystemExit(f"perdure: {err} (PERDURE_LOG_LEVEL)") from None
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
    return dev.run(args)


if __name__ == "__main__":
    sys.exit(main())
