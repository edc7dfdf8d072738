"""The front door under load: POST /v1/workflows from many clients at once.

Prints, for a one-stage no-op workflow and for a workflow with a video input (admission
probes it), the POST latency p50/p99 and submissions per second with ``--clients``
concurrent clients, against one client alone measured in the same run (this machine is
noisy, so only the ratio is comparable between runs).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

import yivideo
from yivideo.testmedia import SENTENCES_EN, make_video

URL = "http://127.0.0.1:8000"


def _posts(body: dict, clients: int, per_client: int) -> tuple[list[float], float]:
    """Each client POSTs ``per_client`` times; (every latency in s, wall seconds)."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=URL, timeout=120) as c:
            for _ in range(per_client):
                t0 = time.perf_counter()
                resp = c.post("/v1/workflows", json=body)
                took = time.perf_counter() - t0
                assert resp.status_code == 202, resp.text
                with lock:
                    latencies.append(took)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - t0


def _row(name: str, latencies: list[float], wall: float, alone_p50: float) -> str:
    q = statistics.quantiles(latencies, n=100)
    p50, p99 = statistics.median(latencies), q[98]
    return (f"{name:<22} p50 {p50 * 1000:7.1f} ms ({p50 / alone_p50:4.1f}x alone)  "
            f"p99 {p99 * 1000:7.1f} ms  {len(latencies) / wall:6.1f} submissions/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--per-client", type=int, default=10)
    args = ap.parse_args()
    yivideo.connect()
    from ray import serve

    from serve_app import build_app

    tmp = Path(tempfile.mkdtemp())
    video = str(make_video(tmp / "clip.mp4", sentences=SENTENCES_EN[:1]).video)
    serve.start(http_options={"host": "127.0.0.1", "port": 8000})
    serve.run(build_app({"rate_limit": {"enabled": False}}), name="yivideo", route_prefix="/")
    bodies = {
        "no-op stage": {"stages": {"n": {"node": "diagnostics.noop"}},
                        "options": {"cache": False}},
        "probe stage (video)": {"inputs": {"video": video}, "options": {"cache": False},
                                "stages": {"p": {"node": "ffmpeg.probe",
                                                 "inputs": {"video": "input.video"}}}},
    }
    print(f"{args.clients} clients x {args.per_client} POSTs each, against 1 client alone")
    for name, body in bodies.items():
        _posts(body, 1, 3)  # warm
        alone, _ = _posts(body, 1, args.per_client)
        loaded, wall = _posts(body, args.clients, args.per_client)
        print(_row(name, loaded, wall, statistics.median(alone)))
    serve.shutdown()


if __name__ == "__main__":
    main()
