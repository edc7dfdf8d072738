"""cluster.yaml and the config files: they parse, fit the actors, name real entrypoints."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from yivideo import cli
from yivideo.nodes import all_services, get_service
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
    # at its smallest the cluster holds every service actor at once: the GPU ones on the
    # GPU workers (CPUs and card fractions), the rest anywhere
    gpu_cpus = sum(t["resources"]["CPU"] * t["min_workers"] for t in gpu_nodes)
    gpu_cards = sum(t["resources"]["GPU"] * t["min_workers"] for t in gpu_nodes)
    all_cpus = gpu_cpus + head["resources"]["CPU"]
    on_gpu = [a for a in settings.actors.values() if a.num_gpus > 0]
    assert sum(a.num_cpus for a in on_gpu) <= gpu_cpus
    assert sum(a.num_gpus for a in on_gpu) <= gpu_cards
    assert sum(a.num_cpus for a in settings.actors.values()) <= all_cpus


REMOTE_ROOT = "/home/ubuntu/yivideo"


def _commands(lines: list[str]) -> list[tuple[dict[str, str], list[str]]]:
    """Each shell command of a cluster.yaml list: (the variables it exports, its argv)."""
    out, env = [], {}
    for line in lines:
        for part in re.split(r"&&|;", line.rstrip(" &")):
            argv = shlex.split(part)
            if argv and argv[0] == "export":
                env |= dict(a.split("=", 1) for a in argv[1:])
            elif argv and argv[0] != "cd":
                argv = argv[1:] if argv[0] == "nohup" else argv
                if ">" in argv:  # drop the output redirection
                    argv = argv[: argv.index(">")]
                out.append((dict(env), argv))
    return out


def _local(remote: str) -> Path:
    """The file in this checkout that ``remote`` names on a node (file_mounts: . -> root)."""
    assert remote.startswith(REMOTE_ROOT + "/"), remote
    return ROOT / remote[len(REMOTE_ROOT) + 1 :]


def _ray_start(argv: list[str]) -> dict:
    """Parse ``ray start`` options with Ray's own command line (raises on unknown ones)."""
    from ray.scripts.scripts import start

    assert Path(argv[0]).name == "ray" and argv[1] == "start", argv
    return start.make_context("start", argv[2:]).params


def test_cluster_yaml_runs_the_projects_entrypoints():
    cluster = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    assert cluster["file_mounts"] == {REMOTE_ROOT: "."}
    (setup,) = _commands(cluster["setup_commands"])
    assert setup[1][0] == "bash" and _local(f"{REMOTE_ROOT}/{setup[1][1]}").is_file()

    head = _commands(cluster["head_start_ray_commands"])
    starts = [(env, argv) for env, argv in head if argv[1:2] == ["start"]]
    (env, argv), = starts
    params = _ray_start(argv)
    assert params["head"] and params["num_gpus"] == 0
    assert _local(env["YIVIDEO_CONFIG"]).name == "config.cluster.yml"
    assert _local(env["YIVIDEO_CONFIG"]).is_file()
    (env, argv), = [(e, a) for e, a in head if a[0].endswith("yivideo")]
    args = cli.parser().parse_args(argv[1:])
    assert args.command == "serve" and args.address == "auto" and args.host == "0.0.0.0"
    assert _local(env["YIVIDEO_CONFIG"]).is_file()

    workers = _commands(cluster["worker_start_ray_commands"])
    (env, argv), = [(e, a) for e, a in workers if a[1:2] == ["start"]]
    params = _ray_start(argv)
    assert not params["head"] and params["address"] == "$RAY_HEAD_IP:6379"
    assert _local(env["YIVIDEO_CONFIG"]).is_file()


def test_default_config_is_every_setting(monkeypatch):
    settings = _settings(ROOT / "config.yml", monkeypatch)
    text = yaml.safe_load((ROOT / "config.yml").read_text())
    assert set(text) == set(Settings.model_fields)  # every key documented in the file
    assert all(a.num_gpus == 0 for a in settings.actors.values())
    # every discovered service gets options: its module's defaults, the file's overrides
    assert set(settings.actors) == {svc.name for svc in all_services()}
    for svc in all_services():
        for key, value in svc.actor_defaults.items():
            if key not in (text["actors"].get(svc.name) or {}):
                assert getattr(settings.actors[svc.name], key) == value, (svc.name, key)


def test_the_cluster_file_overrides_only_what_it_names(monkeypatch):
    settings = _settings(ROOT / "config.cluster.yml", monkeypatch)
    text = yaml.safe_load((ROOT / "config.cluster.yml").read_text())["actors"]
    assert set(text) <= set(settings.actors)
    for name, options in settings.actors.items():
        expected = {**get_service(name).actor_defaults, **(text.get(name) or {})}
        assert {k: getattr(options, k) for k in expected} == expected, name


def test_an_unknown_service_in_the_settings_is_named(monkeypatch):
    monkeypatch.setenv("YIVIDEO_ACTORS__TELEPORT__NUM_GPUS", "1")
    with pytest.raises(ValueError, match="unknown service.*teleport.*known: asr"):
        Settings()


def test_environment_overrides_the_file(monkeypatch):
    settings = _settings(ROOT / "config.yml", monkeypatch)
    monkeypatch.setenv("YIVIDEO_ACTORS__ASR__NUM_GPUS", "0.25")
    monkeypatch.setenv("YIVIDEO_WORKFLOW_TTL_S", "60")
    settings = Settings()
    assert settings.actors["asr"].num_gpus == 0.25
    assert settings.actors["asr"].num_cpus == 1  # the module's other values stay
    assert settings.actors["ffmpeg"].max_concurrency == 4
    assert settings.workflow_ttl_s == 60
