"""The Restate baseline as plain processes: its server and the SDK app, installed on first use.

The versions are pinned so that a comparison means the same thing from one run to the next:

- ``@restatedev/restate-server`` from npm (a static binary in the package),
- ``restate-sdk`` from PyPI, served by ``hypercorn`` (HTTP/2 without TLS, as Restate asks) on
  ``uvloop``, as Perdure's worker and ingress run on it: each side gets its fastest loop,

both installed into ``$PERDURE_BENCH_CACHE`` (default ``~/.cache/perdure-bench``), a folder per
version set, outside the project's virtualenv: Restate's SDK never becomes a Perdure dependency.
The server runs with its defaults (what a user gets), on free ports and a fresh data folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.procs import free_port, stop_all

SERVER_VERSION = "1.7.12"
SDK_VERSION = "1.3.0"
HYPERCORN_VERSION = "0.18.0"
UVLOOP_VERSION = "0.23.0"

REPO = Path(__file__).resolve().parent.parent.parent


class BaselineError(Exception):
    """The Restate baseline could not be installed or started."""


@dataclass(frozen=True)
class Installed:
    """Where the pinned Restate parts are."""

    server: Path
    python: Path


def cache_dir() -> Path:
    """The folder of this version set."""
    root = Path(os.environ.get("PERDURE_BENCH_CACHE", Path.home() / ".cache" / "perdure-bench"))
    return root / f"restate-{SERVER_VERSION}-sdk-{SDK_VERSION}-uvloop-{UVLOOP_VERSION}"


def install() -> Installed:
    """Installs the pinned server and SDK unless they are there already (about 30 s once)."""
    root = cache_dir()
    python = root / "venv" / "bin" / "python"
    if _server_binary(root) is None:
        npm = shutil.which("npm")
        if npm is None:
            raise BaselineError("npm is not installed: it installs the Restate server")
        _run([npm, "install", "--prefix", str(root / "server"), "--no-audit", "--no-fund",
              f"@restatedev/restate-server@{SERVER_VERSION}"])  # fmt: skip
    server = _server_binary(root)
    if server is None:
        raise BaselineError(f"npm installed no Restate server binary for this platform in {root}")
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(root / "venv")])
        _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
              f"restate-sdk=={SDK_VERSION}", f"hypercorn=={HYPERCORN_VERSION}",
              f"uvloop=={UVLOOP_VERSION}"])  # fmt: skip
    return Installed(server, python)


def _server_binary(root: Path) -> Path | None:
    """The native binary of the platform's package, not npm's node shim in ``.bin`` (that would
    be a process of its own between the benchmark and the server)."""
    packages = root / "server" / "node_modules" / "@restatedev"
    found = sorted(packages.glob("restate-server-*/bin/restate-server"))
    return found[0] if found else None


def _run(cmd: list[str]) -> None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired as err:
        raise BaselineError(f"{cmd[0]} took too long: {err}") from err
    if out.returncode != 0:
        raise BaselineError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")


class RestateStack:
    """One Restate server and one SDK process serving ``bench.restate.app``."""

    def __init__(self) -> None:
        self.parts = install()
        self.tmp = Path(tempfile.mkdtemp(prefix="perdure-bench-restate-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ingress_port = free_port()
        self.admin_port = free_port()
        self.url = f"http://127.0.0.1:{self.ingress_port}"
        self.versions = (
            f"restate-server {SERVER_VERSION}, restate-sdk {SDK_VERSION}, "
            f"hypercorn {HYPERCORN_VERSION}, uvloop {UVLOOP_VERSION}"
        )

    def start(self) -> None:
        """Starts both processes, registers the app and waits until a call goes through."""
        env = dict(
            os.environ,
            RESTATE_BASE_DIR=str(self.tmp / "data"),
            RESTATE_BIND_PORT=str(free_port()),
            RESTATE_INGRESS__BIND_ADDRESS=f"127.0.0.1:{self.ingress_port}",
            RESTATE_ADMIN__BIND_ADDRESS=f"127.0.0.1:{self.admin_port}",
            RESTATE_LISTEN_MODE="tcp",
            RESTATE_DISABLE_TELEMETRY="true",
            RESTATE_LOG_FILTER="warn",
        )
        self.server = self._start([str(self.parts.server), "--no-logo"], env, "server.log")
        sdk_port = free_port()
        sdk = [str(self.parts.python), "-m", "hypercorn", "bench.restate.app:app"]
        sdk += ["--bind", f"127.0.0.1:{sdk_port}", "--log-level", "warning"]
        sdk += ["--worker-class", "uvloop"]
        self.sdk = self._start(sdk, dict(os.environ, PYTHONPATH=str(REPO)), "sdk.log")
        admin = f"http://127.0.0.1:{self.admin_port}"
        self._until(lambda: httpx.get(f"{admin}/health", timeout=2).status_code == 200, "admin")
        deployment = {"uri": f"http://127.0.0.1:{sdk_port}", "force": True}
        self._until(
            lambda: httpx.post(f"{admin}/deployments", json=deployment, timeout=10).is_success,
            "registration of the SDK app",
        )
        self._until(
            lambda: httpx.post(f"{self.url}/bench/noop", json=1, timeout=5).status_code == 200,
            "a first call",
        )

    def _start(self, cmd: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        out = (self.tmp / log).open("ab")
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def _until(self, ready: object, what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise BaselineError(f"Restate's {proc.args[0]} exited: {self.logs()}")
            try:
                if ready():  # type: ignore[operator]
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BaselineError(f"Restate: no {what} within {timeout}s: {self.logs()}")
            time.sleep(0.2)

    def logs(self) -> str:
        return "\n".join(
            f"--- {f.name}\n{f.read_text(errors='replace')[-1500:]}" for f in self.tmp.glob("*.log")
        )

    def pids(self) -> dict[str, int]:
        """The processes whose CPU and memory the benchmark reports."""
        return {"restate-server": self.server.pid, "restate-sdk": self.sdk.pid}

    def stop(self) -> None:
        """Stops both processes (by PID) and deletes the data folder."""
        stop_all(self.procs)
        shutil.rmtree(self.tmp, ignore_errors=True)
