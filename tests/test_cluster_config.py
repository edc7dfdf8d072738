"""cluster.yaml and the config files: they parse, fit the actors, name real entrypoints."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from yivideo.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _settings(path: Path, monkeypatch) -> Settings:
    monkeypatch.setenv("YIVIDEO_CONFIG", str(path))
    for key in [k for k in os.environ if k.startswith("YIVIDEO_") and k != "YIVIDEO_CONFIG"]:
        monkeypatch.delenv(key)
    return Settings()


def test_cluster_yaml_matches_actor_needs(monkeypatch):
    cluster = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    assert head["resources"]["GPU"] == 0
    gpu_nodes = [t for t in types.values() if t["resources"].get("GPU", 0) > 0]
    assert gpu_nodes and all(t["max_workers"] >= t["min_workers"] >= 1 for t in gpu_nodes)
    settings = _settings(ROOT / "config.cluster.yml", monkeypatch)
    fractions = [a.num_gpus for a in settings.actors.values() if a.num_gpus > 0]
    assert fractions and all(0 < f <= 1 for f in fractions)
    per_card = min(t["resources"]["GPU"] for t in gpu_nodes)
    assert max(fractions) <= per_card
    cpus = sum(a.num_cpus for a in settings.actors.values())
    assert cpus <= max(t["resources"]["CPU"] for t in types.values())


def test_cluster_yaml_names_the_projects_entrypoints():
    cluster = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    setup = " ".join(cluster["setup_commands"])
    assert "scripts/setup.sh" in setup and (ROOT / "scripts/setup.sh").is_file()
    head = " ".join(cluster["head_start_ray_commands"])
    assert "ray start --head" in head and "yivideo serve --address auto" in head
    assert "config.cluster.yml" in head and (ROOT / "config.cluster.yml").is_file()
    workers = " ".join(cluster["worker_start_ray_commands"])
    assert "ray start --address=$RAY_HEAD_IP:6379" in workers
    assert cluster["file_mounts"] == {"/home/ubuntu/yivideo": "."}


def test_default_config_is_every_setting(monkeypatch):
    settings = _settings(ROOT / "config.yml", monkeypatch)
    text = yaml.safe_load((ROOT / "config.yml").read_text())
    assert set(text) == set(Settings.model_fields)  # every key documented in the file
    assert all(a.num_gpus == 0 for a in settings.actors.values())
    services = {"ffmpeg", "asr", "diarize", "ocr", "subtitle", "diagnostics"}
    assert set(settings.actors) == services <= set(text["actors"])


def test_environment_overrides_the_file(monkeypatch):
    settings = _settings(ROOT / "config.yml", monkeypatch)
    monkeypatch.setenv("YIVIDEO_ACTORS__ASR__NUM_GPUS", "0.25")
    monkeypatch.setenv("YIVIDEO_WORKFLOW_TTL_S", "60")
    settings = Settings()
    assert settings.actors["asr"].num_gpus == 0.25
    assert settings.actors["ffmpeg"].max_concurrency == 4  # the file's other values stay
    assert settings.workflow_ttl_s == 60
