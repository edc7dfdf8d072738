"""The dashboard and scrape config refer to the metrics the code records."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import httpx
import yaml

from yivideo import metrics

from .conftest import METRICS_PORT, wait_until

ROOT = Path(__file__).resolve().parents[1]


def test_dashboard_queries_only_recorded_metrics():
    recorded = set(re.findall(r'"(yivideo_[a-z_]+)"', inspect.getsource(metrics)))
    dash = json.loads((ROOT / "deploy/grafana-dashboard.json").read_text())
    used = set()
    for panel in dash["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"ray_(yivideo_[a-z_]+?)(?:_bucket|_sum|_count)?\b",
                                   target["expr"]))
    assert used and used <= recorded
    assert recorded <= used  # every metric has a panel


def test_prometheus_scrapes_rays_targets(ray_cluster):
    """The targets file Prometheus reads is the one the running cluster wrote, and its
    targets serve Ray's metrics."""
    conf = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    (job,) = conf["scrape_configs"]
    (files,) = [sd["files"] for sd in job["file_sd_configs"]]

    def ours() -> str | None:  # Ray rewrites the file every few seconds, a new cluster's too
        targets = [t for f in files for group in json.loads(Path(f).read_text())
                   for t in group["targets"]]
        return next((t for t in targets if t.endswith(f":{METRICS_PORT}")), None)

    metrics_target = wait_until(ours, 30)  # the cluster's metrics port among the targets
    page = httpx.get(f"http://{metrics_target}/metrics", timeout=10).text
    assert "ray_" in page
