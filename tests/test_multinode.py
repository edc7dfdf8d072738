"""Workflows on two Ray nodes that share no storage.

A head node and a worker node on this machine; the worker runs in its own mount
namespace with an empty tmpfs over the data folder (the input media and storage_dir), so
it sees none of the head's files, like a GPU worker of a real cluster. The service actors
are pinned to the worker by a custom resource, the controller stays on the head. Media
reach the services through Ray's object store (:mod:`yivideo.media.handle`).

The cluster has its own ports and temp folders, and only its own processes are stopped:
``ray stop`` would stop every cluster on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pysubs2
import pytest
from ray.util import get_node_ip_address

from serve_app import stop_orphaned_haproxy
from yivideo.nodes import all_services

# Never at the same time as the session cluster's `ray stop --force`: in its xdist group.
pytestmark = pytest.mark.xdist_group("ray")

BIN = Path(sys.executable).parent
HEAD = f"{get_node_ip_address()}:6390"
HTTP_PORT = 8011
#: Ports of the two nodes, clear of the session cluster's (6379, 8265, 8000, 8089) and of
#: Ray's default worker port range.
_HEAD_PORTS = ["--port=6390", "--node-manager-port=6391", "--object-manager-port=6392",
               "--ray-client-server-port=6393", "--dashboard-agent-listen-port=6394",
               "--dashboard-agent-grpc-port=6395", "--runtime-env-agent-port=6396",
               "--metrics-export-port=6397", "--min-worker-port=20100",
               "--max-worker-port=20299"]
_WORKER_PORTS = ["--node-manager-port=6401", "--object-manager-port=6402",
                 "--dashboard-agent-listen-port=6404", "--dashboard-agent-grpc-port=6405",
                 "--runtime-env-agent-port=6406", "--metrics-export-port=6407",
                 "--min-worker-port=20300", "--max-worker-port=20499"]
#: Serve's HAProxy front door listens on each node (HTTP, stats, metrics, the head's
#: fallback proxy): ports of this cluster's own, since both nodes share this machine.
_HEAD_SERVE_ENV = {"RAY_SERVE_HAPROXY_STATS_PORT": "6410", "RAY_SERVE_HAPROXY_METRICS_PORT": "6411",
                   "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": "6412"}
_WORKER_SERVE_ENV = {"RAY_SERVE_HAPROXY_STATS_PORT": "6413",
                     "RAY_SERVE_HAPROXY_METRICS_PORT": "6414",
                     "RAY_SERVE_WORKER_PROXY_HTTP_PORT": "6415"}
WORDS = {"weather", "park", "brother", "bicycle"}  # from the first two sentences


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:  # in a session of its own: stopped as a group
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _ours(root: Path) -> list[int]:
    """Processes of this cluster: their command line names one of its temp folders."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(root).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _stop(procs: list[subprocess.Popen], root: Path) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.2)
    for pid in _ours(root):  # what the nodes left behind (their workers)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    stop_orphaned_haproxy()  # Serve's HAProxy of each node, whose manager was killed


def _wait_port(port: int) -> None:
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex((HEAD.partition(":")[0], port)) == 0:
                return
        time.sleep(0.2)


def _tmpfs_allowed(folder: Path) -> bool:
    if not shutil.which("unshare") or not shutil.which("nsenter"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs {folder}"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def cluster():
    """``(env, data folder, worker pid)`` of a running head + isolated worker."""
    root = Path(tempfile.mkdtemp(prefix="yvmn-", dir="/tmp"))
    data = root / "data"
    (data / "storage").mkdir(parents=True)
    if not _tmpfs_allowed(data):
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip("needs `unshare -m` and a tmpfs mount (root, or a permissive sandbox)")
    pin = {"resources": {"isolated_worker": 1}}
    config = root / "config.yml"
    config.write_text(json.dumps({"actors": {s.name: pin for s in all_services()}}))
    env = {**os.environ, "YIVIDEO_CONFIG": str(config), "YIVIDEO_NAMESPACE": "multinode",
           "YIVIDEO_STORAGE_DIR": str(data / "storage"), "RAY_ADDRESS": ""}
    ray = str(BIN / "ray")
    common = ["--block", "--disable-usage-stats", "--object-store-memory=200000000"]
    procs = [_start([ray, "start", "--head", *common, *_HEAD_PORTS, "--num-cpus=2",
                     "--include-dashboard=false",
                     f"--temp-dir={root}/h"], {**env, **_HEAD_SERVE_ENV}, root / "head.log")]
    try:
        worker = (f"mount -t tmpfs tmpfs {data} && exec {ray} start --address={HEAD} "
                  f"{' '.join(common + _WORKER_PORTS)} --num-cpus=8 "
                  f"--resources='{{\"isolated_worker\": 100}}' --temp-dir={root}/w")
        _wait_port(6390)  # the head's GCS first
        procs.append(_start(["unshare", "-m", "sh", "-c", worker], {**env, **_WORKER_SERVE_ENV},
                            root / "worker.log"))
        _wait_nodes(env, 2, root, procs)
        yield env, data, procs[1].pid
    finally:
        _stop(procs, root)
        shutil.rmtree(root, ignore_errors=True)


def _wait_nodes(env: dict[str, str], n: int, root: Path, procs: list[subprocess.Popen]
                ) -> None:
    check = (f"import ray, sys, time; ray.init(address='{HEAD}', log_to_driver=False)\n"
             f"for _ in range(60):\n"
             f"    if sum(x['Alive'] for x in ray.nodes()) >= {n}: sys.exit(0)\n"
             f"    time.sleep(0.5)\n"
             f"sys.exit(1)")
    for _ in range(10):
        if any(p.poll() is not None for p in procs):
            break
        if subprocess.run([sys.executable, "-c", check], env=env, capture_output=True,
                          timeout=60).returncode == 0:
            return
        time.sleep(1)
    logs = "".join(p.read_text()[-2000:] for p in root.glob("*.log"))
    raise AssertionError(f"the two nodes did not come up:\n{logs}")


@pytest.fixture(scope="module")
def video(cluster, tmp_path_factory):
    """A short video with speech and burnt-in subtitles, in the data folder the worker
    cannot see."""
    from yivideo.testmedia import SENTENCES_EN, make_video

    _, data, worker = cluster
    truth = make_video(data / "talk.mp4", sentences=SENTENCES_EN[:2], width=640, height=360)
    hidden = subprocess.run(["nsenter", f"--mount=/proc/{worker}/ns/mnt", "test", "-e",
                             truth.video])
    assert hidden.returncode == 1, "the worker node must not see the head's files"
    return truth


def _words(path: Path) -> set[str]:
    text = " ".join(e.plaintext for e in pysubs2.load(str(path))).lower()
    return {w.strip(".,") for w in text.split()}


def test_cli_runs_subtitles_from_a_file_on_the_head(cluster, video, tmp_path):
    env, _, _ = cluster
    proc = subprocess.run([str(BIN / "yivideo"), "run", "subtitles", "--input", video.video,
                           "--out", str(tmp_path), "--address", HEAD], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert WORDS <= _words(tmp_path / "subtitles.srt")


_API = """
import json, sys, ray, yivideo
from yivideo.runtime import get_service_actor
yivideo.connect(address=sys.argv[1])
out = {}
for recipe, folder in (("subtitles", sys.argv[3]), ("hardsub", sys.argv[4])):
    state = yivideo.run(recipe, video=sys.argv[2], out=folder).state
    out[recipe] = {"status": state["status"], "error": state["error"],
                   "cached": {n: s["cached"] for n, s in state["stages"].items()}}
out["nodes"] = {s: ray.get(get_service_actor(s).health.remote())["node_id"]
                for s in ("ffmpeg", "asr", "ocr")}
out["head"] = [n["NodeID"] for n in ray.nodes() if "isolated_worker" not in n["Resources"]]
print(json.dumps(out))
"""


def test_python_api_reuses_results_by_content_and_runs_hardsub(cluster, video, tmp_path):
    """After the CLI's run, ``subtitles`` is all cache hits (keys are content, not where
    the file was); ``hardsub`` runs OCR on the worker."""
    env, _, _ = cluster
    subs, hard = tmp_path / "subs", tmp_path / "hard"
    proc = subprocess.run([sys.executable, "-c", _API, HEAD, video.video, str(subs),
                           str(hard)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["subtitles"]["status"] == "succeeded", out["subtitles"]["error"]
    assert all(out["subtitles"]["cached"].values()), out["subtitles"]["cached"]
    assert out["hardsub"]["status"] == "succeeded", out["hardsub"]["error"]
    assert not set(out["nodes"].values()) & set(out["head"])  # the services ran elsewhere
    assert WORDS <= _words(subs / "subtitles.srt")
    assert WORDS <= _words(hard / "subtitles.srt")  # read from the picture


def test_http_upload_runs_on_the_worker(cluster, video, tmp_path):
    env, _, _ = cluster
    serve = _start([str(BIN / "yivideo"), "serve", "--address", HEAD, "--port",
                    str(HTTP_PORT)], env, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{HTTP_PORT}"
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            for _ in range(120):
                try:
                    if http.get("/v1/info").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            up = http.post("/v1/files", params={"filename": "upload.mp4"},
                           content=Path(video.video).read_bytes())
            assert up.status_code == 201, up.text
            body = {"video_path": up.json()["data"]["path"], "options": {"cache": False},
                    "workflow_config": {"subtitle_generation": {"formats": ["srt"]}}}
            wid = http.post("/v1/workflows", json=body).json()["data"]["id"]
            for _ in range(240):
                state = http.get(f"/v1/workflows/{wid}").json()["data"]
                if state["status"] in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.5)
            assert state["status"] == "succeeded", state["error"]
            srt = http.get(f"/v1/workflows/{wid}/artifacts/subtitles.srt")
            (tmp_path / "up.srt").write_bytes(srt.content)
        assert WORDS <= _words(tmp_path / "up.srt")
        # HAProxy forwards to the ingress replica at the loopback address it binds: the
        # replica runs on the head (the worker is the node in a mount namespace of its own)
        (ingress,) = [p for p in psutil.process_iter(["cmdline"])
                      if "ServeReplica:yivideo:Ingress" in " ".join(p.info["cmdline"] or [])]
        assert os.readlink(f"/proc/{ingress.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(30)
