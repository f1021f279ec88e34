"""``perdure dev``: a local broker, a worker, the ingress and the admin, each restarted if it
dies; or with ``--embedded``, the log and the worker inside the ingress's process."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from perdure.ingress.config import AdminSettings, IngressSettings
from perdure.partitions.config import WorkerSettings
from perdure.serving import load_app, serve

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
    """The address of the broker in ``.perdure/kafka`` (deploy/up.sh's), started if needed.

    Only from a checkout (the script is not in the wheel): installed, pass ``--bootstrap`` or
    use ``--embedded``.
    """
    broker = Path(__file__).resolve().parents[1] / "deploy" / "kafka" / "broker.sh"
    if not broker.exists():
        _say(
            "no Kafka broker given and no local one to start (that needs a checkout of "
            "Perdure); pass one: --bootstrap HOST:PORT, or run without Kafka: --embedded"
        )
        return None
    env = dict(os.environ)
    env.setdefault("KAFKA_DATA_DIR", str(Path.cwd() / ".perdure" / "kafka"))
    out = subprocess.run(["bash", str(broker), "start"], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        _say(
            "no local broker; if a Kafka broker already runs, pass it: "
            "perdure dev MODULE:APP --bootstrap HOST:PORT"
        )
        return None
    return out.stdout.strip().splitlines()[-1]


def run(args: argparse.Namespace) -> int:
    """``perdure dev``: checks its ports, finds or starts a broker, then supervises a worker,
    an ingress and an admin (:func:`supervise`). Flags win over the ``PERDURE_*`` variables the
    processes read (their settings classes), and those over dev's own defaults.
    """
    ingress = IngressSettings.from_env(port=args.port)
    port = ingress.port
    if _port_taken(port):
        _say(f"port {port} is in use (another perdure dev?); stop it or pick one: --port 8081")
        return 1
    worker = WorkerSettings.from_env(
        bootstrap=args.bootstrap, state_dir=args.state_dir, metrics_port=args.metrics_port
    )
    if args.embedded:
        folder = worker.state_dir if "state_dir" in worker.model_fields_set else _EMBEDDED_DIR
        return _run_embedded(args, ingress, worker, Path(folder))
    admin_port = AdminSettings.from_env(port=args.admin_port).port
    if admin_port and _port_taken(admin_port):
        _say(f"admin port {admin_port} is in use; pick another (--admin-port 9071) or 0 for none")
        return 1
    bootstrap = worker.bootstrap if "bootstrap" in worker.model_fields_set else _local_broker()
    if bootstrap is None:
        return 1
    state_dir = worker.state_dir if "state_dir" in worker.model_fields_set else _DEV_STATE_DIR
    common = ["--bootstrap", bootstrap, "--log-level", args.log_level]
    common += ["--log-format", args.log_format]
    if args.cluster:
        common += ["--cluster", args.cluster]
    if args.partitions:
        common += ["--partitions", str(args.partitions)]
    me = [sys.executable, "-m", "perdure"]
    worker_args = [*me, "worker", args.app, "--state-dir", str(state_dir), *common]
    if worker.metrics_port:
        worker_args += ["--metrics-port", str(worker.metrics_port)]
    commands = {"worker": worker_args, "ingress": [*me, "ingress", "--port", str(port), *common]}
    if admin_port:
        commands["admin"] = [*me, "admin", "--port", str(admin_port), *common]
    admin_url = f", admin http://127.0.0.1:{admin_port}" if admin_port else ""
    _say(f"broker {bootstrap}, ingress http://127.0.0.1:{port}{admin_url}, app {args.app}")
    return supervise(commands)


_DEV_STATE_DIR = Path(".perdure/dev-state")
_EMBEDDED_DIR = Path(".perdure/embedded")


def supervise(commands: dict[str, list[str]]) -> int:
    """Runs each command as a child process, restarted with a reason when it exits, until
    SIGTERM or Ctrl-C; returns the exit code.

    A child that exits more than ``_RESTARTS`` times in a minute stops them all with exit
    code 1. The children are stopped by their PIDs (SIGTERM, then SIGKILL after 15 s).
    """

    def on_term(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt  # stop the children below, as for Ctrl-C

    signal.signal(signal.SIGTERM, on_term)
    children = {name: subprocess.Popen(cmd) for name, cmd in commands.items()}
    deaths: dict[str, list[float]] = {name: [] for name in commands}
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


def _run_embedded(
    args: argparse.Namespace, settings: IngressSettings, worker: WorkerSettings, folder: Path
) -> int:
    """``perdure dev --embedded``: the ingress, its log and the worker in this one process."""
    from perdure.ingress.app import Ingress, create_app
    from perdure.partitions.embedded import EmbeddedLog

    app = load_app(args.app)
    ingress = Ingress(settings)
    local = EmbeddedLog(app, folder, worker.suspend_after_s)
    ingress.use_local_log(local)
    _say(f"embedded log in {folder}, ingress http://127.0.0.1:{settings.port}, app {args.app}")
    serve(
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
