"""Real Ray clusters for the test session, started like a user would (`ray start --head`).

A `ray start` cluster (rather than an in-process one) lets the same session test the
job API (`ray job submit`), the CLI in a subprocess, Serve and the Python API. It gets
one logical GPU so fractional placement can be tested on a CPU machine.

Under pytest-xdist the cluster tests come in two groups, each run by one worker on a
cluster of its own (see ``pytest_collection_modifyitems``): ``ray`` on the main cluster
with Ray's default ports (Serve on 8000, the dashboard and job API on 8265, metrics on
8089), ``ray-models`` (whole model workflows, which need none of those) on a second
cluster with ports of its own. A run without xdist has only the main cluster.
"""

from __future__ import annotations

import fcntl
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STORAGE = Path(tempfile.mkdtemp(prefix="yivideo-test-storage-"))
METRICS_PORT = 8089
GCS_PORT = 6379
#: The second cluster's ports and folder: clear of the main cluster's (Ray's defaults
#: above, worker ports 10002-19999) and of test_multinode's (6390-6407, 20100-20499).
SIDE_GCS_PORT = 6480
SIDE_PORTS = [f"--port={SIDE_GCS_PORT}", "--node-manager-port=6481",
              "--object-manager-port=6482", "--ray-client-server-port=6483",
              "--dashboard-agent-listen-port=6484", "--dashboard-agent-grpc-port=6485",
              "--runtime-env-agent-port=6486", "--metrics-export-port=6487",
              "--min-worker-port=20600", "--max-worker-port=20999",
              "--include-dashboard=false"]
SIDE_TEMP = Path("/tmp/yvray-side")
#: Cluster tests that need only a cluster (no Serve, dashboard or metrics port): whole
#: model workflows, run beside the rest on the second cluster.
MODEL_FILES = {"test_dub.py", "test_replace_subs.py", "test_hardsub_workflow.py",
               "test_speakers_workflow.py", "test_inpaint.py", "test_separate.py",
               "test_loudnorm.py", "test_llm.py"}
SERVE_FIXTURES = {"own_endpoint"}  # test_llm's chat endpoint: Serve on the main cluster

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
    """Under pytest-xdist (``--dist loadgroup``), the tests on a cluster run in one worker
    per cluster: ``ray`` (everything that needs the main cluster's fixed ports) and
    ``ray-models`` (model workflows). The largest groups are handed out first, so the
    two start at once on the two workers, which then share the tests that need no cluster."""
    for item in items:
        if "ray_cluster" in item.fixturenames:
            side = item.path.name in MODEL_FILES and not SERVE_FIXTURES & set(item.fixturenames)
            item.add_marker(pytest.mark.xdist_group("ray-models" if side else "ray"))


def _ray(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ray"), *args], capture_output=True, text=True,
                          check=check, cwd=ROOT)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Users:
    """How many pytest processes of this run have a cluster up, in a file all share.

    ``ray stop --force`` stops every cluster on the machine, so only the first process
    in clears what an earlier run left, and only the last one out stops the clusters.
    Without xdist there is one process: it always does both."""

    def __init__(self) -> None:
        run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
        self.count = Path(tempfile.gettempdir()) / f"yivideo-test-ray-{run}" if run else None

    def enter(self) -> None:
        if self.count is None:
            _ray("stop", "--force", check=False)
            return
        with _locked(self.count.with_suffix(".lock")):
            first = not self.count.exists()
            if first:  # leftovers of an earlier run: its clusters' ports would be taken
                _ray("stop", "--force", check=False)
            value = 0 if first else int(self.count.read_text() or 0)
            self.count.write_text(str(value + 1))

    def leave(self) -> None:
        if self.count is None:
            _ray("stop", "--force", check=False)
            return
        with _locked(self.count.with_suffix(".lock")):
            value = int(self.count.read_text() or 0) - 1
            self.count.write_text(str(value))
            if value <= 0:
                _ray("stop", "--force", check=False)
                self.count.unlink()


def _group(request: pytest.FixtureRequest) -> str:
    """The xdist group of the test that first asked for the session's cluster."""
    item = getattr(request, "_pyfuncitem", None)
    marker = item.get_closest_marker("xdist_group") if item is not None else None
    return marker.args[0] if marker and marker.args else "ray"


@pytest.fixture(scope="session")
def ray_cluster(request):
    """Address of a running local cluster; the test process is connected to it."""
    import ray
    from ray.util import get_node_ip_address

    import yivideo

    side = bool(os.environ.get("PYTEST_XDIST_WORKER")) and _group(request) == "ray-models"
    users = _Users()
    users.enter()
    common = [f"--num-cpus={CLUSTER_CPUS}", "--num-gpus=1", "--object-store-memory=500000000",
              "--disable-usage-stats"]
    if side:
        shutil.rmtree(SIDE_TEMP, ignore_errors=True)
        options = [*SIDE_PORTS, f"--temp-dir={SIDE_TEMP}"]
        address = f"{get_node_ip_address()}:{SIDE_GCS_PORT}"
    else:
        options = ["--include-dashboard=true", f"--metrics-export-port={METRICS_PORT}",
                   "--dashboard-host=127.0.0.1"]
        address = "auto"
    started = _ray("start", "--head", *common, *options, check=False)
    if started.returncode != 0:
        users.leave()
        pytest.fail(f"ray start failed:\n{started.stdout}\n{started.stderr}")
    yivideo.connect(address)
    yield address
    ray.shutdown()
    users.leave()
    shutil.rmtree(STORAGE, ignore_errors=True)
    if side:
        shutil.rmtree(SIDE_TEMP, ignore_errors=True)


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


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1):
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
