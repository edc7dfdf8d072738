"""Tests for the synthetic test media generator."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from yivideo.testmedia import (
    SENTENCES_EN,
    SENTENCES_ZH,
    Cue,
    GroundTruth,
    main,
    make_corrupt,
    make_video,
)

pytestmark = pytest.mark.skipif(
    not (shutil.which("ffmpeg") and shutil.which("ffprobe") and shutil.which("espeak-ng")),
    reason="needs ffmpeg, ffprobe and espeak-ng",
)

RATE = 16000


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        [
            "ffprobe", "-v", "error", "-print_format", "json",
            "-show_format", "-show_streams", str(path),
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def decode_audio(path: Path) -> np.ndarray:
    out = subprocess.run(
        [
            "ffmpeg", "-v", "error", "-i", str(path), "-vn",
            "-ac", "1", "-ar", str(RATE), "-f", "f32le", "-",
        ],
        capture_output=True, check=True,
    )  # fmt: skip
    return np.frombuffer(out.stdout, dtype="<f4")


def rms(samples: np.ndarray, start: float, end: float) -> float:
    seg = samples[int(start * RATE) : int(end * RATE)]
    assert seg.size > 0
    return float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))


def streams(info: dict, kind: str) -> list[dict]:
    return [s for s in info["streams"] if s["codec_type"] == kind]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, GroundTruth]:
    d = tmp_path_factory.mktemp("media")
    return {
        "en": make_video(d / "en.mp4", lang="en", sentences=SENTENCES_EN[:3], watermark="DEMO"),
        "zh": make_video(d / "zh.mp4", lang="zh", sentences=SENTENCES_ZH[:2]),
    }


def test_sentence_lists() -> None:
    assert len(SENTENCES_EN) >= 25
    assert all(6 <= len(s.split()) <= 14 for s in SENTENCES_EN)
    assert len(SENTENCES_ZH) >= 15
    assert all(6 <= len(s) <= 16 for s in SENTENCES_ZH)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_video_matches_ground_truth(clips: dict[str, GroundTruth], lang: str) -> None:
    truth = clips[lang]
    video = Path(truth.video)
    assert video.is_file()
    info = ffprobe(video)
    assert abs(float(info["format"]["duration"]) - truth.duration) <= 0.2

    (v,) = streams(info, "video")
    assert (v["width"], v["height"]) == (1280, 720) == (truth.width, truth.height)
    num, den = (int(x) for x in v["r_frame_rate"].split("/"))
    assert num / den == pytest.approx(25.0) == truth.fps
    assert v["codec_name"] == "h264"
    assert v["pix_fmt"] == "yuv420p"
    assert len(streams(info, "audio")) == 1

    n = 3 if lang == "en" else 2
    assert len(truth.speech) == n
    assert truth.subtitles == truth.speech
    prev_end = 0.0
    for cue in truth.speech:
        assert prev_end <= cue.start < cue.end <= truth.duration
        prev_end = cue.end

    saved = GroundTruth.from_json(video.with_name(f"{video.stem}.truth.json"))
    assert saved == truth


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_speech_is_where_the_cues_say(clips: dict[str, GroundTruth], lang: str) -> None:
    truth = clips[lang]
    audio = decode_audio(Path(truth.video))
    assert audio.size / RATE == pytest.approx(truth.duration, abs=0.2)

    margin = 0.1
    bounds = [0.0] + [t for c in truth.speech for t in (c.start, c.end)] + [truth.duration]
    gaps = [(bounds[i], bounds[i + 1]) for i in range(0, len(bounds), 2)]
    gap_rms = max(rms(audio, a + margin, b - margin) for a, b in gaps if b - a > 3 * margin)
    for cue in truth.speech:
        assert rms(audio, cue.start, cue.end) > 10 * gap_rms + 0.01
        # Speech actually starts and ends at the cue boundaries, not well inside.
        assert rms(audio, cue.start, cue.start + 0.3) > 5 * gap_rms + 0.002
        assert rms(audio, cue.end - 0.3, cue.end) > 5 * gap_rms + 0.002


def test_no_audio_stream(tmp_path: Path) -> None:
    truth = make_video(
        tmp_path / "mute.mp4",
        sentences=SENTENCES_EN[:1],
        audio=False,
        burn_subtitles=False,
        moving_background=False,
        width=640,
        height=360,
    )
    info = ffprobe(Path(truth.video))
    assert streams(info, "audio") == []
    (v,) = streams(info, "video")
    assert (v["width"], v["height"]) == (640, 360)
    assert truth.speech == [] and truth.subtitles == []
    assert abs(float(info["format"]["duration"]) - truth.duration) <= 0.2


def test_silent_speech_keeps_audio_stream(tmp_path: Path) -> None:
    truth = make_video(tmp_path / "silent.mp4", sentences=SENTENCES_EN[:1], speech=False)
    info = ffprobe(Path(truth.video))
    assert len(streams(info, "audio")) == 1
    assert truth.speech == []
    assert len(truth.subtitles) == 1
    assert float(np.max(np.abs(decode_audio(Path(truth.video))))) < 1e-3


def test_duration_min_cycles_sentences(tmp_path: Path) -> None:
    truth = make_video(tmp_path / "long.mp4", sentences=SENTENCES_EN[:2], duration_min=12.0)
    assert truth.duration >= 12.0
    assert len(truth.speech) > 2
    assert truth.speech[2].text == SENTENCES_EN[0]


def test_ground_truth_json_round_trip(tmp_path: Path) -> None:
    truth = GroundTruth(
        video="x.mp4",
        duration=3.0,
        lang="zh",
        speech=[Cue(0.5, 1.5, "你好")],
        subtitles=[Cue(0.5, 1.5, "你好")],
        width=640,
        height=360,
        fps=30.0,
    )
    truth.to_json(tmp_path / "t.json")
    assert GroundTruth.from_json(tmp_path / "t.json") == truth


def test_corrupt_file_is_not_media(tmp_path: Path) -> None:
    path = make_corrupt(tmp_path / "broken.mp4")
    assert path.suffix == ".mp4" and path.stat().st_size > 0
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", str(path)], capture_output=True, text=True
    )
    assert proc.returncode != 0 or "codec_type" not in proc.stdout


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--minutes", "0.1", "--name", "clip"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "clip.mp4"), str(tmp_path / "clip.truth.json")]
    truth = GroundTruth.from_json(tmp_path / "clip.truth.json")
    assert truth.duration >= 6.0 and truth.speech
