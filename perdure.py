"""The ``perdure`` command: wires workers and the ingress together; it holds no logic.

    perdure worker MODULE:APP --bootstrap HOST:PORT --state-dir DIR
    perdure ingress --bootstrap HOST:PORT --port PORT
    perdure dev MODULE:APP           # local broker (if none given) + one worker + the ingress

Every flag also reads an environment variable: ``--bootstrap`` reads ``PERDURE_BOOTSTRAP``,
``--state-dir`` reads ``PERDURE_STATE_DIR``, and so on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


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


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", help="Kafka bootstrap address [PERDURE_BOOTSTRAP]")
    parser.add_argument("--cluster", help="prefix of topics and groups [PERDURE_CLUSTER]")
    parser.add_argument(
        "--partitions", type=int, help="log partitions, used at creation [PERDURE_PARTITIONS]"
    )
    parser.add_argument("--log-level", default=os.environ.get("PERDURE_LOG_LEVEL", "INFO"))


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
    _common(worker)

    ingress = sub.add_parser("ingress", help="run the HTTP ingress")
    ingress.add_argument("--port", type=int, help="HTTP port [PERDURE_PORT]")
    ingress.add_argument("--host", help="HTTP address [PERDURE_HOST]")
    _common(ingress)

    dev = sub.add_parser("dev", help="local broker + one worker + the ingress, for trying out")
    dev.add_argument("app", metavar="MODULE:APP")
    dev.add_argument("--port", type=int, default=8080)
    dev.add_argument("--state-dir", default=".perdure/dev-state")
    _common(dev)
    return parser


def _run_worker(args: argparse.Namespace) -> int:
    from partitions.config import WorkerSettings
    from partitions.errors import PartitionError
    from partitions.worker import Worker

    settings = WorkerSettings.from_env(
        bootstrap=args.bootstrap,
        cluster=args.cluster,
        partitions=args.partitions,
        state_dir=Path(args.state_dir) if args.state_dir else None,
        metrics_port=args.metrics_port,
        session_timeout_ms=args.session_timeout_ms,
    )
    app = _load_app(args.app)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Worker(app, settings).run(stop)

    try:
        asyncio.run(main())
    except PartitionError as err:
        logging.getLogger("perdure").error("worker failed: %s", err)
        return 1
    return 0


def _run_ingress(args: argparse.Namespace) -> int:
    import uvicorn

    from ingress.app import create_app
    from ingress.config import IngressSettings

    settings = IngressSettings.from_env(
        bootstrap=args.bootstrap,
        cluster=args.cluster,
        partitions=args.partitions,
        port=args.port,
        host=args.host,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    return 0


def _run_dev(args: argparse.Namespace) -> int:
    bootstrap = args.bootstrap or os.environ.get("PERDURE_BOOTSTRAP")
    if not bootstrap:
        broker = Path(__file__).resolve().parent / "deploy" / "kafka" / "broker.sh"
        out = subprocess.run(["bash", str(broker), "start"], capture_output=True, text=True)
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            return 1
        bootstrap = out.stdout.strip().splitlines()[-1]
    common = ["--bootstrap", bootstrap, "--log-level", args.log_level]
    if args.cluster:
        common += ["--cluster", args.cluster]
    if args.partitions:
        common += ["--partitions", str(args.partitions)]
    me = [sys.executable, "-m", "perdure"]

    def on_term(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt  # stop the children below, as for Ctrl-C

    signal.signal(signal.SIGTERM, on_term)
    worker = subprocess.Popen([*me, "worker", args.app, "--state-dir", args.state_dir, *common])
    ingress = subprocess.Popen([*me, "ingress", "--port", str(args.port), *common])
    print(f"perdure dev: broker {bootstrap}, ingress http://127.0.0.1:{args.port}", flush=True)
    try:
        while worker.poll() is None and ingress.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(1)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in (ingress, worker):
            if proc.poll() is None:
                proc.terminate()
        for proc in (ingress, worker):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``perdure`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    if args.command == "worker":
        return _run_worker(args)
    if args.command == "ingress":
        return _run_ingress(args)
    return _run_dev(args)


if __name__ == "__main__":
    sys.exit(main())
