"""Long audio diarized in windows on two replicas at once and its speakers linked across
the windows: one person keeps one label, and the turns are the ones one process finds
window by window (real pyannote, real Ray)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import ray

from bench.diarize import VOICES, der, make_dialogue
from yivideo.chunking import Chunking, Parts, plan_chunks
from yivideo.diarization import SAMPLE_RATE, build_pipeline, diarize, speakers_of
from yivideo.engine import get_controller
from yivideo.media import decode_audio, encode_wav
from yivideo.runtime import stop_actors
from yivideo.settings import Settings
from yivideo.types import Audio, Span

from .conftest import finished

CHUNK_S = 20.0
SEARCH_S = 5.0


def test_a_merge_node_takes_the_last_tenth_of_the_progress():
    parts = Parts()
    parts.open("w", "dia", [Span(0, 30), Span(30, 40)], merged=True)
    assert parts.progress("w", "dia#0", 1.0, "") == ("dia", 0.675, "30/40 s, 1/2 chunks done")
    assert parts.progress("w", "dia#1", 1.0, "")[:2] == ("dia", 0.9)
    assert parts.progress("w", "dia#merge", 0.5, "linking") == ("dia", 0.95, "linking")
    assert parts.progress("w", "dia#merge", 1.0, "done")[:2] == ("dia", 1.0)


def test_diarization_windows_are_at_most_about_chunk_s():
    noise = np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE * 100).astype(np.float32)
    assert len(plan_chunks(noise, SAMPLE_RATE, 45, 5)) == 2  # the nearest count (ASR's)
    windows = plan_chunks(noise, SAMPLE_RATE, 45, 5, at_most=True)
    assert len(windows) == 3 and all(w.end - w.start <= 45 for w in windows)


def test_a_chunking_merges_one_way():
    with pytest.raises(ValueError, match="either"):
        Chunking("x.plan", "clip")
    with pytest.raises(ValueError, match="either"):
        Chunking("x.plan", "clip", merge=lambda outputs, spans: {}, merge_node="x.merge")


@pytest.fixture(scope="module")
def dialogue():
    """~75 s, two voices taking turns."""
    return make_dialogue(VOICES[:2], 22, seed=4)


@pytest.fixture(scope="module")
def pool(ray_cluster, tmp_path_factory, dialogue):
    """A controller of its own whose diarization service is one to two replicas; the
    dialogue as a WAV file."""
    settings = Settings(
        namespace=f"chunkdia-{uuid.uuid4().hex[:8]}",
        storage_dir=tmp_path_factory.mktemp("chunked-diarize"),
        actors={"diarize": {"num_cpus": 1, "replicas": {"min": 1, "max": 2, "idle_s": 60}}})
    wav = Path(tmp_path_factory.mktemp("wav")) / "dialogue.wav"
    wav.write_bytes(encode_wav(Audio(dialogue.samples, SAMPLE_RATE)))
    controller = get_controller(settings)
    yield settings, controller, wav
    stop_actors(settings)


def test_windows_run_on_two_replicas_and_link_as_one_process_does(pool, dialogue):
    settings, controller, wav = pool
    assert dialogue.duration > 3.5 * CHUNK_S
    wid = ray.get(controller.submit.remote({
        "inputs": {"audio_file": str(wav)}, "options": {"cache": False}, "stages": {
            "audio": {"node": "ffmpeg.decode_audio", "inputs": {"media": "input.audio_file"}},
            "diarize": {"node": "diarize.speakers", "inputs": {"audio": "audio.audio"},
                        "params": {"chunk_s": CHUNK_S, "chunk_search_s": SEARCH_S}}}}))
    state = finished(controller, wid, timeout=300)
    assert state["status"] == "succeeded", state["error"]
    stage = state["stages"]["diarize"]
    chunks = stage["chunks"]
    assert len(chunks) == 4 and stage["message"] == "4 chunks diarized and merged"
    assert stage["progress"] == 1.0
    assert {c["replica"] for c in chunks} == {"service:diarize", "service:diarize:1"}
    assert any(a["pid"] != b["pid"] and a["started_at"] < b["ended_at"]
               and b["started_at"] < a["ended_at"]
               for i, a in enumerate(chunks) for b in chunks[i + 1:]), chunks
    # the merge node wrote the whole input's artifacts
    assert {"diarization.rttm", "diarization.json"} <= {a["name"] for a in state["artifacts"]}

    turns = ray.get(ray.get(controller.output_refs.remote(wid, ["diarize"]))["diarize"])["turns"]
    # one person keeps one label across the four windows
    assert len(speakers_of(turns)) == 2
    assert der(dialogue.turns, turns) <= 0.15
    # one process, the same windows one after another: the same speakers at the same times
    audio = decode_audio(wav)
    alone = diarize(build_pipeline(None, settings.models, "cpu"), audio.samples,
                    audio.sample_rate, chunk_s=CHUNK_S, chunk_search_s=SEARCH_S)
    assert len(speakers_of(alone)) == 2 and der(dialogue.turns, alone) <= 0.15
    assert der(alone, turns) <= 0.01
