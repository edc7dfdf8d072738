"""Service pools: a service's replicas run stages at once, replace a dead one, shrink when
idle, and their settings are checked (``actors.<service>.replicas``)."""

from __future__ import annotations

import time
import uuid

import pytest
import ray
from pydantic import ValidationError

from yivideo.engine import get_controller
from yivideo.runtime import replica_index, replica_name, running_replicas, stop_actors
from yivideo.settings import Settings

from .conftest import finished, wait_until

SERVICE = "diagnostics"


def nap(seconds: float) -> dict:
    return {"inputs": {}, "options": {"cache": False}, "stages": {
        "nap": {"node": "diagnostics.sleep", "params": {"seconds": seconds}}}}


@pytest.fixture(scope="module")
def pool(ray_cluster, tmp_path_factory):
    """A controller of its own whose diagnostics service is a pool of one to two
    replicas, each taking one call at a time and holding a tenth of the logical GPU (so
    that the GPU status lists them); replicas idle for 1 s are stopped."""
    settings = Settings(
        namespace=f"pool-{uuid.uuid4().hex[:8]}", storage_dir=tmp_path_factory.mktemp("pool"),
        actors={SERVICE: {"num_cpus": 0, "num_gpus": 0.1, "max_concurrency": 1,
                          "replicas": {"min": 1, "max": 2, "idle_s": 1.0}}})
    controller = get_controller(settings)
    yield settings, controller
    stop_actors(settings)


def submit(controller, config: dict) -> str:
    return ray.get(controller.submit.remote(config))


def get(controller, wid: str) -> dict:
    return ray.get(controller.get.remote(wid))


def stage_is(controller, wid: str, status: str) -> dict | None:
    stage = get(controller, wid)["stages"]["nap"]
    return stage if stage["status"] == status else None


def test_two_replicas_run_two_stages_at_once(pool):
    settings, controller = pool
    long = submit(controller, nap(30))
    first = wait_until(lambda: stage_is(controller, long, "running"), 60)
    short = submit(controller, nap(2))
    wait_until(lambda: stage_is(controller, short, "running"), 60)
    # both replicas hold their GPU fraction, each listed with its node
    status = ray.get(controller.gpu_status.remote())
    mine = [h for h in status["holders"] if h["service"] == SERVICE]
    assert {h["replica"] for h in mine} == {replica_name(SERVICE, 0), replica_name(SERVICE, 1)}
    assert all(h["state"] == "alive" and h["node_id"] and h["num_gpus"] == 0.1 for h in mine)
    second = finished(controller, short)["stages"]["nap"]
    assert second["status"] == "succeeded"
    assert get(controller, long)["stages"]["nap"]["status"] == "running"
    # the cancel reaches the replica that runs the long stage, not the other one
    ended = ray.get(controller.cancel.remote(long))
    assert ended["status"] == "cancelled"
    first = ended["stages"]["nap"]
    assert first["replica"] != second["replica"]
    host = ray.get_actor(first["replica"], namespace=settings.namespace)
    health = wait_until(lambda: (h := ray.get(host.health.remote()))["stopped"] and h, 30)
    assert [long, "nap"] in [list(k) for k in health["stopped"]]
    assert health["pid"] != second["pid"]  # two processes
    assert first["started_at"] < second["ended_at"] and second["started_at"] < first["ended_at"]


def test_a_killed_replica_is_replaced_and_the_stage_retried(pool):
    settings, controller = pool
    wid = submit(controller, nap(1.5))
    stage = wait_until(lambda: stage_is(controller, wid, "running"), 60)
    victim = ray.get_actor(stage["replica"], namespace=settings.namespace)
    killed = ray.get(victim.health.remote())["pid"]
    ray.kill(victim, no_restart=True)
    state = finished(controller, wid)
    stage = state["stages"]["nap"]
    assert state["status"] == "succeeded", state["error"]
    assert [a["reason"] for a in stage["attempts"]] == ["actor_died"]
    assert stage["pid"] != killed
    assert ray.get(ray.get_actor(stage["replica"], namespace=settings.namespace)
                   .health.remote())["pid"] == stage["pid"]


def test_the_pool_shrinks_to_min_when_idle(pool):
    settings, controller = pool
    long = submit(controller, nap(3))
    wait_until(lambda: stage_is(controller, long, "running"), 60)
    short = finished(controller, submit(controller, nap(0.1)))["stages"]["nap"]
    assert short["status"] == "succeeded"
    assert short["replica"] != get(controller, long)["stages"]["nap"]["replica"]
    assert finished(controller, long)["status"] == "succeeded"
    # idle for 1 s, the replica above min is stopped; the other one stays (min=1)
    wait_until(lambda: len(running_replicas(SERVICE, settings)) == 1, 30)
    time.sleep(1.5)
    assert list(running_replicas(SERVICE, settings)) == [0]


def test_replicas_default_to_one():
    replicas = Settings().actor_options("asr").replicas
    assert (replicas.min, replicas.max) == (1, 1) and replicas.idle_s > 0


@pytest.mark.parametrize("replicas, loc, words", [
    ({"min": 3, "max": 2}, ("actors", "asr", "replicas"), "min (3) must not be above max (2)"),
    ({"min": 0}, ("actors", "asr", "replicas", "min"), "greater than or equal to 1"),
    ({"max": 0}, ("actors", "asr", "replicas", "max"), "greater than or equal to 1"),
    ({"idle_s": 0}, ("actors", "asr", "replicas", "idle_s"), "greater than 0"),
    ({"most": 2}, ("actors", "asr", "replicas", "most"), "Extra inputs are not permitted"),
])
def test_bad_replicas_are_refused_naming_the_field(replicas, loc, words):
    with pytest.raises(ValidationError) as info:
        Settings(actors={"asr": {"replicas": replicas}})
    (error,) = info.value.errors()
    assert error["loc"] == loc and words in error["msg"]


def test_replicas_from_the_environment(monkeypatch):
    monkeypatch.setenv("YIVIDEO_ACTORS__ASR__REPLICAS__MAX", "3")
    replicas = Settings().actor_options("asr").replicas
    assert (replicas.min, replicas.max) == (1, 3)


def test_replica_names():
    assert replica_name("asr") == "service:asr" and replica_name("asr", 2) == "service:asr:2"
    assert [replica_index("asr", n) for n in (
        "service:asr", "service:asr:2", "service:asr:0", "service:asrx", "service:ocr:1",
        "service:asr:x")] == [0, 2, None, None, None, None]
