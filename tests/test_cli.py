"""The command line and `ray job submit`, against the session's running cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLUSTER_CPUS

ROOT = Path(__file__).resolve().parents[1]
YIVIDEO = str(Path(sys.executable).parent / "yivideo")


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([YIVIDEO, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def test_broken_config_exits_2_naming_the_field(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("inputs: {video: v.mp4}\nstages:\n  a: {node: ffmpeg.extract_audio, "
                   "inputs: {video: input.video}, params: {sample_rate: fast}}\n")
    proc = cli("run", str(bad), "--input", "v.mp4")
    assert proc.returncode == 2
    assert "stages.a.params.sample_rate: expected int" in proc.stderr


def test_bad_set_and_unknown_recipe_exit_2():
    proc = cli("run", "subtitles", "--input", "v.mp4", "--set", "subtitle_generation.beam_size=x")
    assert proc.returncode == 2
    assert "workflow_config.subtitle_generation.beam_size" in proc.stderr
    proc = cli("run", "no-such-recipe", "--input", "v.mp4")
    assert proc.returncode == 2 and "neither a recipe" in proc.stderr


def test_nodes_lists_every_node():
    proc = cli("nodes", "--json")
    assert proc.returncode == 0
    names = {n["name"] for n in json.loads(proc.stdout)["nodes"]}
    assert {"ffmpeg.probe", "ffmpeg.extract_audio", "asr.transcribe", "subtitle.write"} <= names


def test_run_writes_artifacts_and_prints_where(ray_cluster, sample, tmp_path):
    out = tmp_path / "out"
    proc = cli("run", "media", "--input", sample.video, "--out", str(out), "--address", "auto")
    assert proc.returncode == 0, proc.stderr
    assert (out / "media.json").is_file() and (out / "audio.wav").is_file()
    assert str(out / "audio.wav") in proc.stdout
    assert "succeeded" in proc.stdout
    assert "keyframes" in proc.stderr  # per-stage progress lines


def test_run_json_and_failure_exit_1(ray_cluster, tmp_path):
    proc = cli("run", "audio", "--input", str(tmp_path / "missing.mp4"), "--json",
               "--address", "auto")
    assert proc.returncode == 1
    state = json.loads(proc.stdout)["state"]
    assert state["status"] == "failed" and "file not found" in state["error"]["message"]


@pytest.mark.parametrize("snippet", [
    "import yivideo\n"
    "yivideo.connect('auto')\n"
    "r = yivideo.run('audio', video=VIDEO)\n"
    "print(r.status, len(r.output('chunks')['chunks']))\n",
])
def test_notebook_style_python_api(ray_cluster, sample, snippet):
    code = f"VIDEO = {sample.video!r}\n" + snippet
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=180, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    status, chunks = proc.stdout.split()[-2:]
    assert status == "succeeded" and int(chunks) >= 1


def _fresh_shell_env() -> dict[str, str]:
    """A new login's environment: no venv on PATH, no RAY_ADDRESS."""
    return {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8"}


def test_without_an_address_the_running_cluster_is_joined(ray_cluster, sample, tmp_path):
    import yivideo

    # the same settings the running actors were started with (else: a settings mismatch)
    settings = {k: v for k, v in os.environ.items() if k.startswith("YIVIDEO_")}
    env = {**_fresh_shell_env(), **settings, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run([YIVIDEO, "run", "media", "--input", sample.video,
                           "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wid = proc.stdout.split("workflow ", 1)[1].split(":", 1)[0]
    assert yivideo.get(wid)["status"] == "succeeded"  # it ran on this session's cluster
    code = "import ray, yivideo\nyivideo.connect()\nprint(ray.cluster_resources()['CPU'])\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.split()[-1]) == CLUSTER_CPUS  # the session cluster's own


def test_the_readme_job_submit_command_runs_as_written(ray_cluster, sample, tmp_path):
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## On a cluster: `ray job submit`", 1)[1].split("```bash\n", 1)[1]
    block = block.split("```", 1)[0]
    lines = block.replace("\\\n", " ").splitlines()
    (submit,) = [line for line in lines if "ray job submit" in line]
    demo = ROOT / "build" / "sample" / "sample.mp4"  # where `make demo` puts it
    if not demo.exists():
        demo.parent.mkdir(parents=True, exist_ok=True)
        demo.write_bytes(Path(sample.video).read_bytes())
    proc = subprocess.run(["bash", "-c", submit], capture_output=True, text=True,
                          timeout=400, cwd=ROOT, env=_fresh_shell_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "succeeded" in proc.stdout
    assert (ROOT / "build" / "job" / "subtitles.srt").is_file()
