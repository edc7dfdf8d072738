"""The engine on a real Ray cluster: state, parallel branches, failures, artifacts."""

from __future__ import annotations

import asyncio
import json

import pytest
import ray

import yivideo
from yivideo.engine import Controller, get_controller
from yivideo.errors import NotFound
from yivideo.runtime import actor_name, get_service_actor
from yivideo.settings import Settings
from yivideo.types import Audio

from .conftest import wait_until

pytestmark = pytest.mark.usefixtures("ray_cluster")


def explicit(video, **stages):
    return {"inputs": {"video": str(video)}, "stages": stages}


def run(config):
    return yivideo.wait(yivideo.submit(config), timeout=120)


def test_workflow_succeeds_with_state_timings_and_artifacts(sample, tmp_path):
    result = yivideo.run("media", video=sample.video, out=tmp_path)
    state = result.state
    assert state["status"] == "succeeded"
    assert state["started_at"] <= state["ended_at"] and state["duration_s"] > 0
    for name, st in state["stages"].items():
        assert st["status"] == "succeeded", name
        assert st["duration_s"] >= st["compute_s"] >= 0
    assert {a["name"] for a in state["artifacts"]} == {"media.json", "audio.wav"}
    info = json.loads((tmp_path / "media.json").read_text())
    assert info["video"]["width"] == 1280
    assert sorted(p.name for p in result.files) == ["audio.wav", "media.json"]
    # the Python API hands back Python objects straight from the object store
    audio = result.output("audio")["audio"]
    assert isinstance(audio, Audio) and audio.duration == pytest.approx(sample.duration, 0.05)
    assert len(result.output("keyframes")["frames"]) >= 1


def test_parallel_branches_overlap_in_time(sample):
    frames = {"node": "ffmpeg.extract_frames", "inputs": {"video": "input.video"},
              "params": {"fps": 10, "width": 640}}
    state = run(explicit(sample.video, a=frames, b=frames))
    a, b = state["stages"]["a"], state["stages"]["b"]
    assert state["status"] == "succeeded"
    assert a["started_at"] < b["ended_at"] and b["started_at"] < a["ended_at"]


def test_data_flows_between_stages_through_the_object_store(sample):
    state = run(explicit(
        sample.video,
        audio={"node": "ffmpeg.extract_audio", "inputs": {"video": "input.video"}},
        chunks={"node": "ffmpeg.split_audio", "inputs": {"audio": "audio.audio"},
                "params": {"mode": "fixed", "window_s": 2.0}},
    ))
    assert state["status"] == "succeeded"
    spans = json.loads(ray.get(get_controller().artifact.remote(state["id"], "chunks.json")))
    assert spans[-1]["end"] == pytest.approx(sample.duration, abs=0.2)


@pytest.mark.parametrize("fixture, code, words", [
    ("missing", "media_error", "file not found"),
    ("corrupt_file", "media_error", "not a readable media file"),
    ("mute_video", "no_audio_stream", "no audio stream"),
])
def test_a_failing_stage_fails_the_workflow_with_its_reason(request, tmp_path, fixture,
                                                            code, words):
    if fixture == "missing":
        video = tmp_path / "missing.mp4"
    else:
        value = request.getfixturevalue(fixture)
        video = getattr(value, "video", value)
    state = run(explicit(
        video,
        audio={"node": "ffmpeg.extract_audio", "inputs": {"video": "input.video"}},
        chunks={"node": "ffmpeg.split_audio", "inputs": {"audio": "audio"}},
    ))
    assert state["status"] == "failed"
    assert state["error"]["stage"] == "audio" and state["error"]["code"] == code
    assert words in state["error"]["message"]
    assert state["stages"]["audio"]["status"] == "failed"
    assert state["stages"]["chunks"]["status"] == "skipped"
    assert state["ended_at"] is not None


def test_actors_are_long_lived_and_reused(sample):
    run(explicit(sample.video, p={"node": "ffmpeg.probe", "inputs": {"video": "input.video"}}))
    first = ray.get(get_service_actor("ffmpeg").health.remote())["pid"]
    state = run(explicit(sample.video, p={"node": "ffmpeg.probe",
                                          "inputs": {"video": "input.video"}}))
    assert state["status"] == "succeeded"
    assert ray.get(ray.get_actor(actor_name("ffmpeg")).health.remote())["pid"] == first


def test_gpu_stage_on_a_cluster_without_enough_gpu_fails_at_once(sample):
    settings = Settings(actors={"ffmpeg": {"num_gpus": 2}})
    with pytest.raises(yivideo.YiVideoError, match="num_gpus=2"):
        get_service_actor("ffmpeg", settings)


def test_unknown_workflow_is_not_found():
    with pytest.raises(NotFound):
        yivideo.get("no-such-id")


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory):
    from yivideo.testmedia import SENTENCES_EN, make_video

    folder = tmp_path_factory.mktemp("long")
    return make_video(folder / "long.mp4", sentences=SENTENCES_EN, duration_min=90,
                      burn_subtitles=False, width=320, height=180)


def subtitles_of(video, **options):
    return {"video_path": str(video), "options": options,
            "workflow_config": {"subtitle_generation": {"formats": ["srt"]}}}


def test_cancel_really_stops_the_running_stage(long_speech):
    wid = yivideo.submit(subtitles_of(long_speech.video, cache=False))
    wait_until(lambda: yivideo.get(wid)["stages"]["asr"]["status"] == "running", 60)
    state = yivideo.cancel(wid)
    assert state["status"] == "cancelled"
    assert state["stages"]["asr"]["status"] == "cancelled"
    assert state["stages"]["subtitles"]["status"] == "cancelled"
    asr = get_service_actor("asr")
    # the actor itself reports that the stage stopped (not merely marked cancelled)
    wait_until(lambda: [wid, "asr"] in [list(k) for k in ray.get(asr.health.remote())[
        "stopped"]], 30)


def test_state_expires_after_ttl(sample, tmp_path):
    """A private controller with a short TTL forgets finished workflows and their files."""

    async def scenario():
        settings = Settings(workflow_ttl_s=0.5, storage_dir=tmp_path)
        controller = Controller(settings.for_actors())
        wid = await controller.submit(explicit(
            sample.video, p={"node": "ffmpeg.probe", "inputs": {"video": "input.video"}}))
        while controller.get(wid)["status"] not in ("succeeded", "failed"):
            await controller.wait(wid, 1.0)
        folder = controller.root / wid
        assert controller.get(wid)["status"] == "succeeded" and folder.exists()
        assert controller.list()["total"] == 1
        await asyncio.sleep(0.6)
        assert controller.list()["total"] == 0
        with pytest.raises(NotFound):
            controller.get(wid)
        assert not folder.exists()

    asyncio.run(scenario())


def test_list_is_paged_newest_first(sample):
    ids = [yivideo.submit(explicit(sample.video, p={"node": "ffmpeg.probe",
                                                    "inputs": {"video": "input.video"}}))
           for _ in range(3)]
    for wid in ids:
        yivideo.wait(wid, timeout=60)
    page = ray.get(get_controller().list.remote(0, 2))
    assert len(page["items"]) == 2 and page["total"] >= 3
    assert page["items"][0]["id"] == ids[-1]
    assert ray.get(get_controller().list.remote(1, 1))["items"][0]["id"] == ids[-2]
