"""The dashboard and scrape config refer to the metrics the code records."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import yaml

from yivideo import metrics

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


def test_prometheus_scrapes_rays_targets():
    conf = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    files = conf["scrape_configs"][0]["file_sd_configs"][0]["files"]
    assert files == ["/tmp/ray/prom_metrics_service_discovery.json"]
