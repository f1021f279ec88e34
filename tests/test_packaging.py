"""The wheel as a user gets it: one import name, typed, and no clash with a user's own modules.

The wheel is built from this tree and installed with ``--no-deps`` into a fresh virtualenv whose
dependencies come from the test's own environment (a ``.pth`` line: no download). That
environment holds an editable install, whose finder the new one never runs, so ``perdure`` there
can only be the wheel's.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.cluster import REPO, free_port, wait_until

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Installed:
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    # A copy of the sources: a build in the checkout would leave build/ there, whose stale
    # files (a module since moved) would go into every later wheel.
    source = root / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "restate_ts")
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("perdure", "engine", "partitions", "ingress", "sdk", "examples"):
        shutil.copytree(REPO / name, source / name, symlinks=True, ignore=skip)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root / "dist"), source],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (root / "dist").glob("perdure-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (target,) = (venv / "lib").glob("python3*/site-packages")
    (target / "_perdure_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
    done = subprocess.run(
        [*pip, "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return Installed(venv)


def test_the_wheel_installs_one_import_name_and_its_type_marker(installed: Installed) -> None:
    probe = """
        import importlib.metadata as m, json
        d = m.distribution("perdure")
        files = [str(f) for f in d.files]
        print(json.dumps({
            "top": sorted({f.split("/")[0] for f in files
                           if not f.startswith("..") and ".dist-info" not in f.split("/")[0]}),
            "typed": "perdure/py.typed" in files,
            "examples": "perdure/examples/payments.py" in files,
            "webui": any(f.startswith("perdure/ingress/admin/webui/") for f in files),
            "plugin": [e.value for e in d.entry_points if e.group == "pytest11"],
        }))
    """
    out = installed.run(str(installed.python), "-c", textwrap.dedent(probe), cwd=installed.venv)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found["top"] == ["perdure"], found
    assert found["typed"] and found["examples"] and found["webui"], found
    assert found["plugin"] == ["perdure.partitions.testing.pytest_plugin"]


USER_ENGINE = 'NAME = "the user\'s engine"\n'
USER_SDK = 'def helper() -> str:\n    return "the user\'s sdk"\n'
USER_APP = """
import engine
import sdk
from perdure import Context, Endpoint, Service

greeter = Service("greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    helped = await ctx.run("helper", sdk.helper)
    return f"{engine.NAME}, {helped}, {name}"


app = Endpoint([greeter])
"""
USER_TEST = """
import pytest

import app as user_app


@pytest.fixture
def perdure_app():
    return user_app.app


@pytest.mark.asyncio
async def test_greet(perdure_runtime):
    out = await perdure_runtime.call(user_app.greet, "ada")
    assert out == "the user's engine, the user's sdk, ada"
"""


@pytest.fixture
def user_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "engine.py").write_text(USER_ENGINE)
    (project / "sdk.py").write_text(USER_SDK)
    (project / "app.py").write_text(USER_APP)
    (project / "test_app.py").write_text(USER_TEST)
    return project


def test_a_project_with_its_own_engine_and_sdk_modules_runs_its_tests(
    installed: Installed, user_project: Path
) -> None:
    out = installed.run(
        str(installed.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=user_project
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout


def test_a_project_with_its_own_engine_and_sdk_modules_runs_under_perdure_dev(
    installed: Installed, user_project: Path
) -> None:
    port = free_port()
    log = (user_project / "dev.log").open("wb")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    command = [str(installed.venv / "bin" / "perdure"), "dev", "--embedded", "app:app"]
    command += ["--port", str(port), "--state-dir", str(user_project / "state")]
    popen = subprocess.Popen(
        command, cwd=user_project, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert popen.poll() is None, (user_project / "dev.log").read_text()
            try:
                return httpx.get(f"{url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 60, "perdure dev --embedded in the user's project")
        began = time.monotonic()
        answer = httpx.post(f"{url}/greeter/greet", json="ada", timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json() == "the user's engine, the user's sdk, ada"
        assert time.monotonic() - began < 30
    finally:
        popen.kill()
        popen.wait(timeout=10)


TYPED_USER_CODE = """
from perdure import Context, PerdureClient, Service

svc = Service("svc")


@svc.handler()
async def add(ctx: Context, n: int) -> int:
    return n + 1


@svc.handler()
async def caller(ctx: Context, n: int) -> int:
    result = await ctx.service_call(add, n)
    return result + 1


def from_outside(client: PerdureClient) -> int:
    return client.call(add, 41)
"""

WRONG_USER_CODE = """
from perdure import Context, PerdureClient, Service

svc = Service("svc")


@svc.handler()
async def add(ctx: Context, n: int) -> int:
    return n + 1


@svc.handler()
async def caller(ctx: Context, n: int) -> str:
    result = await ctx.service_call(add, "one")
    return result


def from_outside(client: PerdureClient) -> int:
    return client.call(add, "forty-one")
"""


def _mypy(installed: Installed, project: Path, source: str) -> subprocess.CompletedProcess[str]:
    (project / "handlers.py").write_text(source)
    return installed.run(
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--no-incremental",
        "--python-executable",
        str(installed.python),
        "handlers.py",
        cwd=project,
        timeout=300,
    )


def test_mypy_on_a_user_project_reports_a_wrong_argument_to_a_handler(
    installed: Installed, tmp_path: Path
) -> None:
    good = _mypy(installed, tmp_path, TYPED_USER_CODE)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Success" in good.stdout
    bad = _mypy(installed, tmp_path, WRONG_USER_CODE)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    errors = [line for line in bad.stdout.splitlines() if ": error:" in line]
    # ctx.service_call(add, "one"): the handler's parameter type reaches the caller.
    assert any("handlers.py:14:" in e and '"service_call"' in e for e in errors), bad.stdout
    # ... and so does its result's: an int returned as a str.
    assert any("handlers.py:15:" in e and "[return-value]" in e for e in errors), bad.stdout
    # client.call(add, "forty-one") from outside.
    assert any("handlers.py:19:" in e and '"call"' in e for e in errors), bad.stdout
    assert len(errors) == 3, bad.stdout
    assert "py.typed" not in bad.stdout and "missing library stubs" not in bad.stdout
