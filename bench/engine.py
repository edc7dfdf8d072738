"""Engine overhead, measured against the bare operation in the same run.

Prints, warm, median of N runs:
  bare       media.probe() in this process
  actor      the same node through its service actor (one Ray call)
  workflow   a one-stage workflow through the engine (submit -> succeeded)
  noop       a one-stage workflow of diagnostics.noop vs one Ray call of it
  http       POST /v1/workflows -> succeeded for a short ffmpeg-only workflow
and the per-stage overhead of the engine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import ray

import yivideo
from yivideo import media
from yivideo.runtime import get_service_actor
from yivideo.testmedia import SENTENCES_EN, make_video


def median_ms(fn, n: int) -> float:
    fn()  # warm
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    video = make_video(tmp / "clip.mp4", sentences=SENTENCES_EN[:2]).video
    yivideo.connect()

    probe_cfg = {"inputs": {"video": video}, "options": {"cache": False},
                 "stages": {"p": {"node": "ffmpeg.probe", "inputs": {"video": "input.video"},
                                  "params": {"save": False}}}}
    chain_cfg = {"inputs": {"video": video}, "options": {"cache": False}, "stages": {
        f"p{i}": {"node": "ffmpeg.probe", "inputs": {"video": "input.video"},
                  "params": {"save": False}} for i in range(5)}}
    host = get_service_actor("ffmpeg")
    bare = median_ms(lambda: media.probe(video), args.runs)
    actor = median_ms(lambda: ray.get(host.run.options(num_returns=2).remote(
        "ffmpeg.probe", {"save": False}, [("video", None, video)], "bench", "p")[0]),
        args.runs)
    flow = median_ms(lambda: yivideo.wait(yivideo.submit(probe_cfg)), args.runs)
    noop_cfg = {"inputs": {}, "options": {"cache": False},
                "stages": {"n": {"node": "diagnostics.noop"}}}
    diag = get_service_actor("diagnostics")
    noop_call = median_ms(lambda: ray.get(diag.run.options(num_returns=2).remote(
        "diagnostics.noop", {}, [], "bench", "n")[0]), args.runs)
    noop_flow = median_ms(lambda: yivideo.wait(yivideo.submit(noop_cfg)), args.runs)
    overheads = []
    for _ in range(args.runs):
        state = yivideo.wait(yivideo.submit(chain_cfg))
        overheads += [(s["duration_s"] - s["compute_s"]) * 1000 for s in state["stages"].values()]

    from ray import serve

    from serve_app import build_app

    serve.start(http_options={"host": "127.0.0.1", "port": 8000})
    serve.run(build_app({"rate_limit": {"enabled": False}}), name="yivideo", route_prefix="/")
    body = {"video_path": video, "workflow_config": {"audio_extraction": {}},
            "options": {"cache": False}}

    def http_roundtrip() -> None:
        with httpx.Client(base_url="http://127.0.0.1:8000", timeout=60) as c:
            wid = c.post("/v1/workflows", json=body).json()["data"]["id"]
            while c.get(f"/v1/workflows/{wid}").json()["data"]["status"] not in (
                    "succeeded", "failed"):
                time.sleep(0.01)

    http = median_ms(http_roundtrip, max(5, args.runs // 2))
    print(f"runs per figure: {args.runs} (median, warm)")
    print(f"bare probe          {bare:8.1f} ms   1.00x")
    print(f"actor call          {actor:8.1f} ms   {actor / bare:5.2f}x")
    print(f"1-stage workflow    {flow:8.1f} ms   {flow / bare:5.2f}x")
    print(f"noop: one Ray call {noop_call:6.1f} ms; one-stage workflow {noop_flow:6.1f} ms "
          f"(engine adds {noop_flow - noop_call:.1f} ms per workflow)")
    print(f"engine overhead per stage (stage wall - compute, 5 parallel stages): "
          f"median {statistics.median(overheads):.1f} ms")
    print(f"HTTP POST -> succeeded (probe + extract_audio, 2 stages): {http:.1f} ms")
    serve.shutdown()


if __name__ == "__main__":
    main()
