"""A long video's burnt-in subtitles read in chunks on two OCR replicas at once: every
subtitle once at its frames, one shown across a cut one event (real PP-OCRv6, real Ray)."""

from __future__ import annotations

import uuid

import pytest
import ray

from bench.ocr import score
from yivideo.engine import get_controller
from yivideo.runtime import stop_actors
from yivideo.settings import Settings
from yivideo.testmedia import SENTENCES_EN, make_video

from .conftest import finished

CHUNK_S = 8.0
FRAME = 1 / 25


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """~25 s of English subtitles, 640x360."""
    return make_video(tmp_path_factory.mktemp("chunked-ocr") / "subs.mp4", lang="en",
                      sentences=SENTENCES_EN[:6], width=640, height=360, audio=False)


@pytest.fixture(scope="module")
def pool(ray_cluster, tmp_path_factory):
    """A controller of its own whose OCR service is one to two replicas."""
    settings = Settings(
        namespace=f"chunkocr-{uuid.uuid4().hex[:8]}",
        storage_dir=tmp_path_factory.mktemp("chunked-ocr-store"),
        actors={"ocr": {"num_cpus": 1, "replicas": {"min": 1, "max": 2, "idle_s": 60}}})
    yield settings, get_controller(settings)
    stop_actors(settings)


def _read(controller, video: str, chunk_s: float) -> tuple[dict, object]:
    wid = ray.get(controller.submit.remote({
        "inputs": {"video": video}, "options": {"cache": False}, "stages": {
            "band": {"node": "ocr.detect_band", "inputs": {"video": "input.video"}},
            "ocr": {"node": "ocr.extract_subtitles",
                    "inputs": {"video": "input.video", "band": "band.band"},
                    "params": {"language": "en", "chunk_s": chunk_s}}}}))
    state = finished(controller, wid, timeout=300)
    assert state["status"] == "succeeded", state["error"]
    out = ray.get(ray.get(controller.output_refs.remote(wid, ["ocr"]))["ocr"])
    return state, out["transcript"]


def test_chunks_run_on_two_replicas_and_read_every_subtitle_once(pool, video):
    _, controller = pool
    state, chunked = _read(controller, video.video, CHUNK_S)
    stage = state["stages"]["ocr"]
    chunks = stage["chunks"]
    assert len(chunks) == round(video.duration / CHUNK_S) >= 3
    assert stage["message"] == f"{len(chunks)} chunks read and merged"
    assert {c["replica"] for c in chunks} == {"service:ocr", "service:ocr:1"}
    assert any(a["pid"] != b["pid"] and a["started_at"] < b["ended_at"]
               and b["started_at"] < a["ended_at"]
               for i, a in enumerate(chunks) for b in chunks[i + 1:]), chunks
    # the artifact is the merged one, listed once
    assert [a["stage"] for a in state["artifacts"] if a["name"] == "ocr_events.json"] == ["ocr"]

    # every subtitle once, at its frames: a cut fell inside a subtitle, which is one event
    # (that the joined chunks equal one pass: test_ocr.py, test_chunks_read_across_cuts...)
    cuts = [c["start"] for c in chunks[1:]]
    assert any(cue.start < cut < cue.end for cut in cuts for cue in video.subtitles), cuts
    s = score(chunked.segments, video.subtitles)
    assert (s.found, s.missing, s.duplicates, s.spurious) == (len(video.subtitles), 0, 0, 0)
    assert s.cer <= 0.05
    assert max(s.start_errors + s.end_errors) <= FRAME + 0.011  # ASS centisecond rounding
