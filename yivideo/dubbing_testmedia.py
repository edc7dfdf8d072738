"""A video to dub, with exact ground truth: Chinese subtitles burnt in, English speech.

The burnt-in lines and the spoken lines say *different* things, so that a dub made from
the subtitles (OCR -> translation -> TTS) can be told apart from the original voice: a
word the original speaker said that the translated script never says must not be heard
in the dub. Built from :mod:`yivideo.testmedia` (frames, burnt subtitles, espeak-ng) and
:mod:`yivideo.testmusic` (the music bed).
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yivideo.media import encode_wav
from yivideo.testmedia import Cue, GroundTruth, make_video, speech_track
from yivideo.testmusic import music_bed
from yivideo.types import Audio

#: burnt in (Chinese) and, in each slot, what the original speaker says instead (English)
SUBTITLES_ZH = ["今天的天气非常好。", "我的妹妹喜欢唱歌和跳舞。", "妈妈在厨房里做晚饭。"]
SPOKEN_EN = ["The train leaves at seven o'clock.", "Bananas are yellow and sweet.",
             "The violin sounds lovely."]
_RATE = 44100


@dataclass
class DubSource:
    """The generated video and what it holds."""

    video: str
    duration: float
    subtitles: list[Cue]  # burnt-in Chinese lines, frame-exact
    speech: list[Cue]  # the original English voice, in the same slots


def make_dub_source(out_path: str | Path, *, subtitles: list[str] | None = None,
                    spoken: list[str] | None = None, duration_min: float | None = None,
                    width: int = 640, height: int = 360, music_db: float = -12.0,
                    gap: float = 0.8) -> DubSource:
    """Render ``out_path``: ``subtitles`` burnt in, ``spoken`` said at each line's start
    over a music bed ``music_db`` below full scale-ish speech level; with ``duration_min``
    the lines repeat until the video lasts that long."""
    subtitles = subtitles or SUBTITLES_ZH
    spoken = spoken or SPOKEN_EN
    if len(subtitles) != len(spoken):
        raise ValueError("one spoken line per subtitle")
    out = Path(out_path).resolve()
    with tempfile.TemporaryDirectory(prefix="yivideo-dubsrc-") as tmp:
        silent = Path(tmp) / "frames.mp4"
        truth: GroundTruth = make_video(silent, lang="zh", sentences=subtitles, speech=False,
                                        width=width, height=height, gap=gap,
                                        duration_min=duration_min)
        n = int(round(truth.duration * _RATE))
        voice = np.zeros(n, np.float32)
        clips = {}
        for i, text in enumerate(spoken):
            samples, _ = speech_track([text], rate=_RATE, lead_in=0.0)
            clips[subtitles[i]] = samples
        speech = []
        for cue in truth.subtitles:
            clip = clips[cue.text]
            at = int(round(cue.start * _RATE))
            piece = clip[:max(0, n - at)]
            voice[at:at + len(piece)] += piece
            speech.append(Cue(cue.start, round(cue.start + len(piece) / _RATE, 4),
                              spoken[subtitles.index(cue.text)]))
        bed = music_bed(truth.duration, _RATE, seed=5)
        bed *= 10 ** (music_db / 20) * np.sqrt(np.mean(voice[voice != 0] ** 2)) / (
            np.sqrt(np.mean(bed ** 2)) + 1e-9)
        wav = Path(tmp) / "audio.wav"
        wav.write_bytes(encode_wav(Audio(np.clip(voice + bed, -1, 1), _RATE)))
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(silent),
                        "-i", str(wav), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
                        "-c:a", "aac", "-b:a", "128k", "-shortest", str(out)], check=True)
    return DubSource(str(out), truth.duration, truth.subtitles, speech)

