"""Speaker-attributed subtitles through the engine: `subtitles-speakers` on a real cluster."""

from __future__ import annotations

import json

import pysubs2
import pytest

import yivideo
from bench.diarize import VOICES, make_dialogue
from yivideo.media import encode_wav
from yivideo.types import Audio

pytest.importorskip("pyannote.audio", reason="diarization needs pyannote.audio")
pytestmark = pytest.mark.usefixtures("ray_cluster")


def test_subtitles_carry_speakers_in_every_format(tmp_path):
    dialogue = make_dialogue(VOICES[:2], turns=4, seed=1)
    wav = tmp_path / "dialogue.wav"
    wav.write_bytes(encode_wav(Audio(dialogue.samples, 16000)))
    result = yivideo.run("subtitles-speakers", video=wav, out=tmp_path / "out",
                         overrides=["subtitle_generation.formats=[srt,vtt,ass,json]"])
    assert result.status == "succeeded", result.state["error"]
    out = tmp_path / "out"
    speakers = set(json.loads((out / "diarization.json").read_text())["speakers"])
    assert len(speakers) == 2
    assert (out / "diarization.rttm").read_text().startswith("SPEAKER")
    srt = pysubs2.load(str(out / "subtitles.srt"))
    labelled = [e.plaintext for e in srt if e.plaintext.startswith("[SPEAKER_")]
    assert len(labelled) == len(srt) and {t[:12] for t in labelled} == {
        f"[{s}]" for s in speakers}
    assert "[SPEAKER_" in (out / "subtitles.vtt").read_text()
    ass = pysubs2.load(str(out / "subtitles.ass"))
    assert speakers <= set(ass.styles)
    doc = json.loads((out / "subtitles.json").read_text())
    assert {e["speaker"] for e in doc["events"]} == speakers
