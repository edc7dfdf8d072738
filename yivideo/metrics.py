"""Custom metrics through Ray's own metrics system (exported with Ray's Prometheus metrics).

Names appear on a node's metrics endpoint prefixed ``ray_`` (e.g.
``ray_yivideo_workflows_total``). Metric objects are made on first use, inside the
process that records them.
"""

from __future__ import annotations

from functools import cache

from ray.util.metrics import Counter, Gauge, Histogram

_SECONDS = [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800]


@cache
def workflows() -> Counter:
    return Counter("yivideo_workflows_total", "Workflows that reached a final status",
                   tag_keys=("status",))


@cache
def stage_seconds() -> Histogram:
    return Histogram("yivideo_stage_seconds", "Wall time of a stage, submission to result",
                     boundaries=_SECONDS, tag_keys=("node", "status"))


@cache
def queue_seconds() -> Histogram:
    return Histogram("yivideo_queue_wait_seconds", "Time a stage waited for its actor",
                     boundaries=_SECONDS, tag_keys=("node",))


@cache
def cache_lookups() -> Counter:
    return Counter("yivideo_cache_lookups_total", "Result-cache lookups", tag_keys=("result",))


@cache
def model_load_seconds() -> Histogram:
    return Histogram("yivideo_model_load_seconds", "Time to load a model into an actor",
                     boundaries=_SECONDS, tag_keys=("service", "model"))


@cache
def gpu_fraction() -> Gauge:
    return Gauge("yivideo_gpu_fraction_in_use", "GPU fraction held by YiVideo service actors",
                 tag_keys=("service",))
