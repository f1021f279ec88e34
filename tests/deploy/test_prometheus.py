"""A real Prometheus scrapes a running cluster with traffic: every panel of every dashboard
returns data.

Prometheus is Debian's ``prometheus`` package (deploy/check.sh installs it where it is
missing), run with the scrape jobs of deploy/prometheus/prometheus.yml pointed at this test's
processes. Traffic covers what the panels show: calls that succeed and fail (5xx, retries),
durable steps, sleepers (timers), a subscription, an operator listing invocations. Each
dashboard is then drawn from that Prometheus and its screenshot kept with the artefacts
(``dashboard-<name>.png``; a preview of the data, since Grafana cannot be installed here).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.browser import ARTIFACTS, chromium_page, screenshot
from tests.cluster import Cluster, free_port, wait_until
from tests.deploy import dashboard_preview
from tests.integration.test_subscriptions import make_topic, produce, subscribe

pytestmark = [pytest.mark.kafka, pytest.mark.integration, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[dict[str, list[str]]], str]]:
    """Starts Prometheus with the given targets per job; yields a starter, stops it after."""
    binary = shutil.which("prometheus")
    assert binary, "Prometheus is not installed (apt-get install prometheus; deploy/check.sh does)"
    procs: list[subprocess.Popen[bytes]] = []

    def start(targets: dict[str, list[str]]) -> str:
        config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
        config["global"]["scrape_interval"] = "1s"
        for job in config["scrape_configs"]:
            job["static_configs"] = [{"targets": targets[job["job_name"]]}]
        path = tmp_path / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        log = (tmp_path / "prometheus.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    binary,
                    f"--config.file={path}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 30, "Prometheus to be ready")
        return url

    try:
        yield start
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def query(url: str, expr: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    assert r.status_code == 200, (expr, r.text)
    result: list[dict[str, Any]] = r.json()["data"]["result"]
    return result


def has_data(url: str, expr: str) -> bool:
    return any(not math.isnan(float(s["value"][1])) for s in query(url, expr))


def test_every_panel_of_every_dashboard_returns_data(
    cluster_factory: Callable[..., Cluster],
    prometheus: Callable[[dict[str, list[str]]], str],
    unique_name: Callable[[str], str],
) -> None:
    c = cluster_factory(app="tests.apps.observed:app", partitions=4)
    metrics = [free_port(), free_port()]
    workers = [
        c.start_worker(f"w{i}", env={"PERDURE_METRICS_PORT": str(port)})
        for i, port in enumerate(metrics)
    ]
    c.start_ingress()
    c.start_admin(port=free_port())
    for w in workers:
        c.wait_leading(w, 1, timeout=90)
    assert c.ingress_port is not None and c.admin_port is not None
    url = prometheus(
        {
            "perdure-workers": [f"127.0.0.1:{p}" for p in metrics],
            "perdure-ingress": [f"127.0.0.1:{c.ingress_port}"],
            "perdure-admin": [f"127.0.0.1:{c.admin_port}"],
        }
    )
    scraped_from = time.time()
    topic = make_topic(c.bootstrap, unique_name("observed"), partitions=2)
    subscribe(c, topic, "service://tally/add")
    for _ in range(3):
        assert httpx.post(f"{c.url}/tests/sleeper/send", json=600_000).status_code == 202
    stop = threading.Event()

    def traffic() -> None:
        n = 0
        order = {"userId": "u", "amount": 1}
        while not stop.is_set():
            n += 1
            httpx.post(f"{c.url}/counter/k{n % 7}/add", json=1, timeout=30)
            httpx.post(f"{c.url}/payments/process_payment", json={**order, "orderId": f"o{n}"})
            if n % 5 == 0:
                httpx.post(f"{c.url}/tests/always_fails", json=None, timeout=30)  # 500, retries
                # Fails its first attempt on each new key: retries of the counter service.
                httpx.post(f"{c.url}/counter/f{n}/set_then_fail", json=None, timeout=30)
                value = json.dumps({"n": n}).encode()
                produce(c.bootstrap, topic, [(f"k{n % 3}".encode(), value)])
                # An operator's page: the admin API's panel.
                httpx.get(f"{c.admin_url}/invocations", params={"status": "suspended"}, timeout=30)

    loader = threading.Thread(target=traffic, daemon=True)
    loader.start()
    try:
        panels = []
        for path in sorted((REPO / "deploy/grafana/dashboards").glob("*.json")):
            for panel in json.loads(path.read_text())["panels"]:
                for target in panel["targets"]:
                    expr = target["expr"].replace("$service", "counter")
                    panels.append((f"{path.stem}: {panel['title']}", expr))
        missing = panels
        deadline = time.monotonic() + 90
        while missing and time.monotonic() < deadline:
            time.sleep(2)
            missing = [(title, expr) for title, expr in missing if not has_data(url, expr)]
        assert not missing, "panels without data:\n" + "\n".join(f"{t}: {e}" for t, e in missing)
        # Half a minute of traffic, scraped every second, gives the preview lines, not dots;
        # the README's picture had more (PERDURE_DASHBOARD_PREVIEW_S=240), for rates past
        # their first minute's ramp.
        length = float(os.environ.get("PERDURE_DASHBOARD_PREVIEW_S", "30"))
        time.sleep(max(0.0, scraped_from + length - time.time()))
        preview(url, scraped_from)
    finally:
        stop.set()
        loader.join(60)


def preview(url: str, start: float) -> None:
    """Draws each dashboard from this Prometheus and keeps a screenshot with the artefacts
    (tests/deploy/dashboard_preview.py: Grafana cannot be installed here); every panel draws
    at least one line."""
    for path in sorted((REPO / "deploy/grafana/dashboards").glob("*.json")):
        page_html = dashboard_preview.render(
            json.loads(path.read_text()), url, start, time.time(), {"service": "counter"}
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        html_path = ARTIFACTS / f"dashboard-{path.stem}.html"
        html_path.write_text(page_html)
        with chromium_page(1430, 900) as page:
            page.goto(html_path.as_uri())
            empty = page.locator('section.panel[data-series="0"] h2').all_inner_texts()
            assert not empty, f"{path.stem}: panels drawn without a line: {empty}"
            assert page.locator("polyline").count() > 0
            screenshot(page, f"dashboard-{path.stem}")
