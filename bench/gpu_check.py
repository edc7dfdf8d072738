"""GPU path check, for a machine with a real NVIDIA GPU (prints what it finds).

1. Ray sees the GPU; four service actors asking 0.25 each share it (same GPU id) and a
   fifth waits until one is gone; a workflow runs through the engine on a 0.25 actor.
2. Four fractional Ray actors run torch matmuls on the card at the same time.
3. Whether CTranslate2's CUDA build (faster-whisper) could load its cuBLAS here.
"""

from __future__ import annotations

import ctypes
import os
import time

import ray

import yivideo
from yivideo.engine import get_controller
from yivideo.runtime import get_service_actor
from yivideo.settings import Settings


def drill_services() -> None:
    quarter = {"num_cpus": 0, "num_gpus": 0.25}
    settings = Settings(namespace="gpu-check", actors={
        s: quarter for s in ("asr", "ocr", "subtitle", "diagnostics", "ffmpeg")})
    first = [get_service_actor(s, settings) for s in ("asr", "ocr", "subtitle", "diagnostics")]
    health = ray.get([a.health.remote() for a in first], timeout=120)
    print("4 x 0.25 placed; GPU ids:", [h["gpu_ids"] for h in health])
    fifth = get_service_actor("ffmpeg", settings)
    ready, _ = ray.wait([fifth.health.remote()], timeout=5)
    print("5th 0.25 actor placed while 4 hold the card:", bool(ready))
    ray.kill(first[0])
    t0 = time.monotonic()
    print("5th placed after one left:", ray.get(fifth.health.remote(), timeout=60)["gpu_ids"],
          f"in {time.monotonic() - t0:.1f} s")
    for actor in [*first[1:], fifth]:
        ray.kill(actor)


def drill_engine() -> None:
    settings = Settings(actors={"diagnostics": {"num_cpus": 0, "num_gpus": 0.25}})
    controller = get_controller(settings)
    wid = ray.get(controller.submit.remote({"inputs": {}, "options": {"cache": False},
                                            "stages": {"nap": {"node": "diagnostics.sleep",
                                                               "params": {"seconds": 2}}}}))
    time.sleep(1)
    print("gpu-locks/status during a stage:", ray.get(controller.gpu_status.remote()))
    print("workflow on a 0.25 GPU actor:", yivideo.wait(wid, timeout=60)["status"])
    ray.kill(get_service_actor("diagnostics", settings))  # give its quarter back


@ray.remote(num_gpus=0.25, num_cpus=0)
class Matmul:
    def run(self, n: int = 8192, reps: int = 20) -> dict:
        import torch

        a = torch.randn(n, n, device="cuda", dtype=torch.float16)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ a
        torch.cuda.synchronize()
        return {"gpu": ray.get_gpu_ids(), "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "name": torch.cuda.get_device_name(0),
                "tflops": round(2 * n**3 * reps / (time.perf_counter() - t0) / 1e12, 1)}


def drill_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch not installed: skipping the matmul drill")
        return
    actors = [Matmul.remote() for _ in range(4)]
    results = ray.get([a.run.remote() for a in actors], timeout=180)
    print("4 fractional actors, matmuls at once:", results)


def cublas_for_ctranslate2() -> None:
    for lib in ("libcublas.so.12", "libcublas.so.13", "libcudnn.so.9"):
        try:
            ctypes.CDLL(lib)
            print(f"{lib}: loadable")
        except OSError as e:
            print(f"{lib}: not loadable ({e})")


def main() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(namespace="yivideo", include_dashboard=False, log_to_driver=False)
    print("cluster resources:", ray.cluster_resources())
    if os.environ.get("GPU_CHECK_ONLY") != "torch":
        drill_services()
        drill_engine()
    drill_torch()
    cublas_for_ctranslate2()
    ray.shutdown()


if __name__ == "__main__":
    main()
