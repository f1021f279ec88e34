"""The Grafana dashboards ask only for metrics that Perdure's processes export.

A static check (a real Prometheus scraping a running cluster comes with issue 14's
dashboard test): every panel has a query, every ``perdure_*`` series a query names is one a
worker, an ingress or an admin registers, and compose provisions every dashboard file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from perdure.ingress.admin.forwarder import ForwarderMetrics
from perdure.ingress.admin.metrics import AdminMetrics
from perdure.ingress.metrics import IngressMetrics
from perdure.ingress.subscriptions.metrics import SubscriptionMetrics
from perdure.partitions.metrics import WorkerMetrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "deploy/grafana/dashboards").glob("*.json"))


def exported() -> set[str]:
    """Every sample name the processes expose (counters with their _total, histograms with
    their _bucket/_sum/_count)."""
    names: set[str] = set()
    forwarder = CollectorRegistry()
    ForwarderMetrics(forwarder)
    admin = CollectorRegistry()
    AdminMetrics(admin)
    registries = [
        WorkerMetrics().registry,
        IngressMetrics().registry,
        SubscriptionMetrics().registry,
        forwarder,
        admin,
    ]
    for registry in registries:
        for family in registry.collect():
            names.add(family.name)
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
    return names


def test_every_panel_query_names_exported_metrics_only() -> None:
    assert {p.name for p in DASHBOARDS} == {"cluster-overview.json", "service.json"}
    known = exported()
    for path in DASHBOARDS:
        doc = json.loads(path.read_text())
        assert doc["uid"] and doc["panels"], path.name
        for panel in doc["panels"]:
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            for target in panel["targets"]:
                for name in re.findall(r"\b(perdure_[a-z_]+)", target["expr"]):
                    assert name in known, f"{path.name}: {panel['title']}: {name} is not exported"


def test_compose_runs_the_whole_stack_and_provisions_the_dashboards() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = set(compose["services"])
    assert {
        "kafka",
        "worker-1",
        "worker-2",
        "ingress",
        "admin",
        "prometheus",
        "grafana",
    } <= services
    mounts = " ".join(compose["services"]["grafana"]["volumes"])
    assert "deploy/grafana/dashboards" in mounts and "deploy/grafana/provisioning" in mounts
    scrape = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    assert targets == {"worker-1:9100", "worker-2:9100", "ingress:8080", "admin:9070"}
    for worker in ("worker-1", "worker-2"):
        assert "--metrics-port" in compose["services"][worker]["command"]
