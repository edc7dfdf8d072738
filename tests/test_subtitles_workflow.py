"""Speech to subtitles end to end: real tiny.en model, generated speech, real Ray."""

from __future__ import annotations

import json
import subprocess

import jiwer
import pysubs2
import pytest

import yivideo
from yivideo.media import probe
from yivideo.testmedia import normalise_for_wer

pytestmark = pytest.mark.usefixtures("ray_cluster")


@pytest.fixture(scope="module")
def subtitles(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("subs")
    result = yivideo.run("subtitles", video=sample.video, out=out)
    assert result.status == "succeeded", result.state["error"]
    return out, result


def test_all_formats_written(subtitles):
    out, result = subtitles
    names = {p.name for p in result.files}
    assert {"subtitles.srt", "subtitles.vtt", "subtitles.ass", "subtitles.json"} <= names


def test_wer_and_sentence_starts(subtitles, sample):
    out, _ = subtitles
    subs = pysubs2.load(str(out / "subtitles.srt"))
    hypothesis = normalise_for_wer(" ".join(e.plaintext for e in subs))
    reference = normalise_for_wer(" ".join(c.text for c in sample.speech))
    assert jiwer.wer(reference, hypothesis) <= 0.15
    doc = json.loads((out / "subtitles.json").read_text())
    word_starts = [w["start"] for s in doc["segments"] for w in s["words"]]
    for cue in sample.speech:  # each sentence begins within 0.5 s of a recognised word
        assert min(abs(cue.start - t) for t in word_starts) <= 0.5, cue


def test_events_respect_the_rules_and_stay_inside_speech(subtitles, sample):
    out, _ = subtitles
    subs = pysubs2.load(str(out / "subtitles.srt"))
    assert subs.events
    last_speech_end = sample.speech[-1].end
    for a, b in zip(subs.events, subs.events[1:], strict=False):
        assert a.end <= b.start
    for e in subs.events:
        lines = e.plaintext.split("\n")
        assert len(lines) <= 2 and all(len(ln) <= 42 for ln in lines)
        assert e.end - e.start <= 7000
        assert e.start >= sample.speech[0].start * 1000 - 500
        assert e.end <= (last_speech_end + 1.0) * 1000


@pytest.mark.parametrize("fmt", ["srt", "vtt", "ass"])
def test_outputs_reparse_with_pysubs2_and_ffmpeg(subtitles, fmt):
    out, _ = subtitles
    path = out / f"subtitles.{fmt}"
    assert len(pysubs2.load(str(path))) >= 1
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0",
                           "-c:s", "srt", "-f", "srt", "-"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""
    assert "-->" in proc.stdout


def test_json_carries_language_duration_and_words(subtitles, sample):
    out, _ = subtitles
    doc = json.loads((out / "subtitles.json").read_text())
    assert doc["language"] == "en"
    assert doc["duration"] == pytest.approx(sample.duration, abs=0.3)
    assert all(w["end"] >= w["start"] for s in doc["segments"] for w in s["words"])
    assert doc["events"]


def test_python_api_returns_transcript_objects(subtitles):
    _, result = subtitles
    events = result.output("subtitles")["events"]
    assert events and all(e.end > e.start for e in events)
    transcript = result.output("asr")["transcript"]
    assert transcript.language == "en" and transcript.words
    with pytest.raises(yivideo.YiVideoError, match="no finished stage"):
        result.output("audio")  # bulky audio consumed by asr is freed


def test_burn_and_mux_nodes(sample, tmp_path):
    config = {"inputs": {"video": str(sample.video)}, "stages": {
        "audio": {"node": "ffmpeg.extract_audio", "inputs": {"video": "input.video"}},
        "asr": {"node": "asr.transcribe", "inputs": {"audio": "audio"}},
        "subs": {"node": "subtitle.write", "inputs": {"transcript": "asr"},
                 "params": {"formats": ["srt"]}},
        "burn": {"node": "subtitle.burn", "inputs": {"video": "input.video",
                                                     "events": "subs.events"},
                 "params": {"preset": "ultrafast", "crf": 35}},
        "mux": {"node": "subtitle.mux", "inputs": {"video": "input.video",
                                                   "events": "subs.events"},
                "params": {"language": "eng"}},
    }}
    result = yivideo.run(config, out=tmp_path)
    assert result.status == "succeeded", result.state["error"]
    burned = probe(tmp_path / "burned.mp4")
    assert burned["duration"] == pytest.approx(sample.duration, abs=0.3)
    streams = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                              "stream=codec_type:stream_tags=language", "-of", "json",
                              str(tmp_path / "with_subtitles.mkv")],
                             capture_output=True, text=True, check=True).stdout
    kinds = [(s["codec_type"], s.get("tags", {}).get("language"))
             for s in json.loads(streams)["streams"]]
    assert ("subtitle", "eng") in kinds and ("video", None) in [(k, None) for k, _ in kinds]


def test_silent_video_gives_empty_valid_subtitles(silent_video, tmp_path):
    result = yivideo.run("subtitles", video=silent_video.video, out=tmp_path)
    assert result.status == "succeeded"
    assert len(pysubs2.load(str(tmp_path / "subtitles.srt"), format_="srt")) == 0
    assert json.loads((tmp_path / "subtitles.json").read_text())["segments"] == []


def test_video_without_audio_fails_clearly(mute_video):
    result = yivideo.run("subtitles", video=mute_video.video)
    assert result.status == "failed"
    assert result.state["error"]["stage"] == "audio"
    assert result.state["error"]["code"] == "no_audio_stream"
    assert result.state["stages"]["asr"]["status"] == "skipped"


def test_corrupt_file_fails_clearly(corrupt_file):
    result = yivideo.run("subtitles", video=corrupt_file)
    assert result.status == "failed"
    assert "not a readable media file" in result.state["error"]["message"]


def test_unknown_model_fails_with_available_list(sample):
    result = yivideo.run("subtitles", video=sample.video,
                         overrides=["subtitle_generation.model=huge-v9"])
    assert result.status == "failed"
    assert result.state["error"]["code"] == "model_not_found"
    assert "tiny.en" in result.state["error"]["message"]
