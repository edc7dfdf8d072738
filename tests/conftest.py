"""One real Ray cluster per test session, started like a user would (`ray start --head`).

A `ray start` cluster (rather than an in-process one) lets the same session test the
job API (`ray job submit`), the CLI in a subprocess, Serve and the Python API. It gets
one logical GPU so fractional placement can be tested on a CPU machine.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STORAGE = Path(tempfile.mkdtemp(prefix="yivideo-test-storage-"))
METRICS_PORT = 8089

# Settings for every process of the cluster (raylet workers inherit this environment).
os.environ.update(
    # One thread per library (torch, CTranslate2, onnxruntime use OpenMP): on 2 cores shared
    # with Ray and a second pytest worker, OpenMP threads spin-wait on each other and a
    # 10 s diarization took 200 s. Ray gives its 1-CPU actors one thread likewise.
    OMP_NUM_THREADS="1",
    MKL_NUM_THREADS="1",
    RAY_USAGE_STATS_ENABLED="0",
    RAY_AUTH_MODE="disabled",
    YIVIDEO_STORAGE_DIR=str(STORAGE),
    YIVIDEO_MAX_UPLOAD_MB="8",
    YIVIDEO_CALLBACK_ALLOWLIST='["127.0.0.1"]',
    YIVIDEO_WEBHOOK_SECRET="whsec_dGVzdC1zZWNyZXQtZm9yLXlpdmlkZW8tdGVzdHM=",
    YIVIDEO_RETRY_BACKOFF_S="0.1",
    YIVIDEO_RATE_LIMIT__RATE="100000/minute",
    PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
)


def _cluster_cpus() -> int:
    """Logical CPUs of the session cluster: every service actor at once (each holds its
    CPUs while it lives), and room for the actors tests start in namespaces of their own."""
    from yivideo.settings import Settings

    return math.ceil(sum(a.num_cpus for a in Settings().actors.values())) + 8


CLUSTER_CPUS = _cluster_cpus()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist loadgroup``), every test on the shared Ray cluster runs
    in one worker: the cluster's ports are fixed, so there is one per machine. The other
    worker runs the tests that need no cluster meanwhile."""
    for item in items:
        if "ray_cluster" in item.fixturenames:
            item.add_marker(pytest.mark.xdist_group("ray"))


def _ray(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ray"), *args], capture_output=True, text=True,
                          check=check, cwd=ROOT)


@pytest.fixture(scope="session")
def ray_cluster():
    """Address of a running local cluster; the test process is connected to it."""
    import ray

    import yivideo
    from serve_app import stop_orphaned_haproxy

    _ray("stop", "--force", check=False)
    started = _ray("start", "--head", f"--num-cpus={CLUSTER_CPUS}", "--num-gpus=1",
                   "--object-store-memory=500000000", "--include-dashboard=true",
                   f"--metrics-export-port={METRICS_PORT}",
                   "--dashboard-host=127.0.0.1", "--disable-usage-stats", check=False)
    if started.returncode != 0:
        pytest.fail(f"ray start failed:\n{started.stdout}\n{started.stderr}")
    yivideo.connect("auto")
    yield "auto"
    ray.shutdown()
    _ray("stop", "--force", check=False)
    stop_orphaned_haproxy()  # Serve's HAProxy outlives a forced stop
    shutil.rmtree(STORAGE, ignore_errors=True)


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """A short English video with speech and burnt-in subtitles, and its ground truth."""
    from yivideo.testmedia import SENTENCES_EN, make_video

    folder = tmp_path_factory.mktemp("media")
    truth = make_video(folder / "sample.mp4", sentences=SENTENCES_EN[:4])
    return truth


@pytest.fixture(scope="session")
def silent_video(tmp_path_factory):
    from yivideo.testmedia import make_video

    folder = tmp_path_factory.mktemp("silent")
    return make_video(folder / "silent.mp4", sentences=["one two three"], speech=False)


@pytest.fixture(scope="session")
def mute_video(tmp_path_factory):
    """A video with no audio stream at all."""
    from yivideo.testmedia import make_video

    folder = tmp_path_factory.mktemp("mute")
    return make_video(folder / "mute.mp4", sentences=["one two three"], audio=False)


@pytest.fixture(scope="session")
def corrupt_file(tmp_path_factory):
    from yivideo.testmedia import make_corrupt

    return make_corrupt(tmp_path_factory.mktemp("corrupt") / "broken.mp4")


def finished(controller, wid: str, timeout: float = 60.0) -> dict:
    """The workflow's state once it is final, asked of the controller directly."""
    import ray

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = ray.get(controller.wait.remote(wid, 5.0))
        if state["status"] in ("succeeded", "failed", "cancelled"):
            return state
    raise AssertionError(f"workflow {wid} did not finish in {timeout} s")


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1):
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
