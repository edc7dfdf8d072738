"""Synthetic test media with exact ground truth.

Speech is synthesised offline with espeak-ng, laid on a timeline, and rendered into an
H.264/AAC video with ffmpeg; the same cues are burned in as subtitles through libass.
The ground truth (speech and subtitle cues, geometry, duration) is written next to the
video as ``<stem>.truth.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pysubs2

from yivideo.testmusic import Mix, mix_at

__all__ = [
    "SENTENCES_EN",
    "SENTENCES_ZH",
    "SENTENCES_ZH_EN",
    "Cue",
    "GroundTruth",
    "make_video",
    "make_corrupt",
    "make_speech_music",
    "speech_track",
    "main",
]

SENTENCES_EN: list[str] = [
    "The weather is lovely today, so we walked to the park.",
    "My brother bought a new bicycle last weekend.",
    "Please close the window before you leave the room.",
    "We had pancakes and fresh orange juice for breakfast.",
    "The train to the city leaves at nine in the morning.",
    "She reads a book every night before going to sleep.",
    "Our teacher asked us to write a short story about summer.",
    "The coffee shop on the corner opens very early.",
    "He forgot his umbrella and got wet in the rain.",
    "Can you help me carry these boxes to the car?",
    "The children played football in the garden all afternoon.",
    "I like to listen to music while I cook dinner.",
    "The museum is closed on Mondays and public holidays.",
    "We are planning a trip to the mountains next month.",
    "Remember to water the plants while I am away.",
    "The meeting will start in ten minutes.",
    "My grandmother makes the best apple pie in town.",
    "The dog waited patiently by the door for its owner.",
    "Turn left at the bank and the library is on your right.",
    "They watched a funny movie together on Friday night.",
    "It takes about twenty minutes to drive to the airport.",
    "The little girl drew a picture of a big red house.",
    "We need to buy milk, bread and eggs from the store.",
    "The sun was shining brightly over the calm blue sea.",
    "Thank you very much for your kind and helpful message.",
    "He practices the piano for one hour every day.",
    "The new restaurant downtown serves delicious Italian food.",
    "Please send me the report by the end of the week.",
    "The birds started singing as soon as the sun came up.",
    "She smiled and waved goodbye from the window of the bus.",
]

SENTENCES_ZH: list[str] = [
    "今天的天气非常好。",
    "我们明天早上去公园散步。",
    "他每天晚上都会看书。",
    "这家饭店的菜很好吃。",
    "请把窗户关上，外面很冷。",
    "我的妹妹喜欢唱歌和跳舞。",
    "火车九点钟从北京出发。",
    "老师让我们写一篇短文。",
    "周末我们一起去看电影吧。",
    "这本书是我朋友送给我的。",
    "他忘了带伞，被雨淋湿了。",
    "我们下个月要去山里旅行。",
    "妈妈在厨房里做晚饭。",
    "孩子们在花园里踢足球。",
    "请在周五之前把报告发给我。",
    "图书馆星期一不开门。",
    "我每天喝一杯咖啡。",
    "小狗在门口等它的主人。",
    "谢谢你的帮助，我很高兴。",
    "太阳出来了，鸟儿开始唱歌。",
]

#: English reference translations of ``SENTENCES_ZH``, line by line (translation tests).
SENTENCES_ZH_EN: list[str] = [
    "The weather is very nice today.",
    "We will go for a walk in the park tomorrow morning.",
    "He reads books every evening.",
    "The food in this restaurant is delicious.",
    "Please close the window, it is cold outside.",
    "My younger sister likes singing and dancing.",
    "The train leaves Beijing at nine o'clock.",
    "The teacher asked us to write a short essay.",
    "Let's go to see a movie together at the weekend.",
    "This book was given to me by my friend.",
    "He forgot his umbrella and got wet in the rain.",
    "We are going to travel to the mountains next month.",
    "Mom is making dinner in the kitchen.",
    "The children are playing football in the garden.",
    "Please send me the report before Friday.",
    "The library is closed on Mondays.",
    "I drink a cup of coffee every day.",
    "The puppy is waiting for its owner at the door.",
    "Thank you for your help, I am very happy.",
    "The sun has come out and the birds have started singing.",
]

_DEFAULT_VOICE = {"en": "en-us", "zh": "cmn"}
_FONT_NAME = {"en": "DejaVu Sans", "zh": "WenQuanYi Zen Hei"}
_FONT_FILES = {
    "en": ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"],
    "zh": [
        "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
        "/usr/share/fonts/wqy-zenhei/wqy-zenhei.ttc",
    ],
}
_SILENCE_THRESHOLD = 0.005  # fraction of int16 full scale regarded as audible
_SPEECH_RATE_WPM = 160


@dataclass
class Cue:
    """A timed piece of text, in seconds from the start of the video."""

    start: float
    end: float
    text: str


@dataclass
class GroundTruth:
    """What a generated video contains, exactly."""

    video: str
    duration: float
    lang: str
    speech: list[Cue] = field(default_factory=list)
    subtitles: list[Cue] = field(default_factory=list)
    width: int = 1280
    height: int = 720
    fps: float = 25.0

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write the ground truth as UTF-8 JSON."""
        Path(path).write_text(
            json.dumps(asdict(self), ensure_ascii=False, indent=2), encoding="utf-8"
        )

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> GroundTruth:
        """Read ground truth written by :meth:`to_json`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        data["speech"] = [Cue(**c) for c in data.get("speech", [])]
        data["subtitles"] = [Cue(**c) for c in data.get("subtitles", [])]
        return cls(**data)


def normalise_for_wer(text: str) -> str:
    """Text as word error rates compare it: lower case, letters, digits and apostrophes."""
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]", " ", text.lower())).strip()


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio of ``a`` against ``b`` in dB (images, 8-bit levels)."""
    mse = float(np.mean((np.asarray(a, np.float64) - b) ** 2))
    return 10 * math.log10(peak**2 / max(mse, 1e-9))


def _run(cmd: list[str], cwd: str | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}"
        )


def _synthesize(text: str, voice: str, wav_path: Path) -> tuple[np.ndarray, int]:
    """Speak ``text`` with espeak-ng; return trimmed int16 mono samples and the rate."""
    _run(["espeak-ng", "-v", voice, "-s", str(_SPEECH_RATE_WPM), "-w", str(wav_path), text])
    with wave.open(str(wav_path), "rb") as wf:
        rate = wf.getframerate()
        channels = wf.getnchannels()
        width = wf.getsampwidth()
        raw = wf.readframes(wf.getnframes())
    if width != 2:
        raise RuntimeError(f"unexpected sample width {width} from espeak-ng")
    samples = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    if channels > 1:
        samples = samples.reshape(-1, channels)[:, 0].copy()
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > _SILENCE_THRESHOLD * 32767)
    if loud.size == 0:
        raise RuntimeError(f"espeak-ng produced silence for {text!r}")
    return samples[loud[0] : loud[-1] + 1].copy(), rate


def _resample(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst:
        return samples
    n = int(round(len(samples) * dst / src))
    x = np.linspace(0.0, len(samples) - 1, n)
    return np.interp(x, np.arange(len(samples)), samples).astype(np.int16)


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(rate)
        wf.writeframes(samples.astype("<i2").tobytes())


def _write_ass(path: Path, cues: list[Cue], lang: str, width: int, height: int) -> None:
    subs = pysubs2.SSAFile()
    subs.info["PlayResX"] = str(width)
    subs.info["PlayResY"] = str(height)
    subs.info["WrapStyle"] = "0"
    subs.info["ScaledBorderAndShadow"] = "yes"
    scale = height / 720.0
    subs.styles["Default"] = pysubs2.SSAStyle(
        fontname=_FONT_NAME.get(lang, "DejaVu Sans"),
        fontsize=round(40 * scale),
        primarycolor=pysubs2.Color(255, 255, 255, 0),
        secondarycolor=pysubs2.Color(255, 255, 255, 0),
        outlinecolor=pysubs2.Color(0, 0, 0, 0),
        backcolor=pysubs2.Color(0, 0, 0, 128),
        bold=False,
        borderstyle=1,
        outline=max(1.0, round(2.5 * scale, 1)),
        shadow=0,
        alignment=pysubs2.Alignment.BOTTOM_CENTER,
        marginl=round(40 * scale),
        marginr=round(40 * scale),
        marginv=round(40 * scale),
    )
    for cue in cues:
        subs.append(
            pysubs2.SSAEvent(
                start=int(round(cue.start * 1000)),
                end=int(round(cue.end * 1000)),
                text=cue.text,
                style="Default",
            )
        )
    subs.save(str(path), format_="ass")


def _font_file(lang: str) -> str | None:
    for candidate in _FONT_FILES.get(lang, []) + _FONT_FILES["en"]:
        if Path(candidate).is_file():
            return candidate
    return None


def make_video(
    out_path: str | os.PathLike[str],
    *,
    lang: str = "en",
    sentences: list[str] | None = None,
    duration_min: float | None = None,
    voice: str | None = None,
    speech: bool = True,
    burn_subtitles: bool = True,
    width: int = 1280,
    height: int = 720,
    fps: float = 25,
    gap: float = 0.6,
    lead_in: float = 1.0,
    watermark: str | None = None,
    moving_background: bool = True,
    audio: bool = True,
) -> GroundTruth:
    """Render a test video with synthetic speech and burned subtitles.

    Sentences (default: ``SENTENCES_EN`` or ``SENTENCES_ZH``) are spoken one after another,
    ``gap`` seconds apart, after ``lead_in`` seconds of silence and followed by the same
    amount of silence. Without ``duration_min`` every sentence is used once; with it the
    sentences are cycled and the video lasts at least ``duration_min`` seconds. Subtitle
    cues have exactly the speech timings. ``speech=False`` keeps a silent audio track,
    ``audio=False`` omits the audio stream. The ground truth is also written to
    ``<stem>.truth.json`` next to the video.
    """
    if lang not in _DEFAULT_VOICE:
        raise ValueError(f"unsupported lang {lang!r}; expected one of {sorted(_DEFAULT_VOICE)}")
    if shutil.which("espeak-ng") is None or shutil.which("ffmpeg") is None:
        raise RuntimeError("espeak-ng and ffmpeg must be installed")
    texts = (
        list(sentences)
        if sentences is not None
        else (SENTENCES_EN if lang == "en" else SENTENCES_ZH)
    )
    if not texts:
        raise ValueError("at least one sentence is required")
    if width % 2 or height % 2:
        raise ValueError("width and height must be even for yuv420p")
    voice = voice or _DEFAULT_VOICE[lang]
    out = Path(out_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="yivideo-testmedia-") as tmp_str:
        tmp = Path(tmp_str)
        clips: dict[int, np.ndarray] = {}
        rate = 0

        def clip(i: int) -> np.ndarray:
            nonlocal rate
            if i not in clips:
                samples, src_rate = _synthesize(texts[i], voice, tmp / f"s{i}.wav")
                if rate == 0:
                    rate = src_rate
                clips[i] = _resample(samples, src_rate, rate)
            return clips[i]

        # Lay sentences on the timeline in whole samples so cue times are exact.
        cues: list[Cue] = []
        placed: list[tuple[int, np.ndarray]] = []
        cursor_s: int | None = None
        k = 0
        while True:
            samples = clip(k % len(texts))
            if cursor_s is None:
                cursor_s = int(round(lead_in * rate))
            start_s = cursor_s
            end_s = start_s + len(samples)
            if duration_min is not None and cues and end_s / rate + lead_in > duration_min:
                break
            placed.append((start_s, samples))
            cues.append(
                Cue(round(start_s / rate, 4), round(end_s / rate, 4), texts[k % len(texts)])
            )
            cursor_s = end_s + int(round(gap * rate))
            k += 1
            if duration_min is None and k >= len(texts):
                break

        total = max(cues[-1].end + lead_in, duration_min or 0.0)
        n_frames = math.ceil(total * fps - 1e-6)
        duration = n_frames / fps
        n_samples = int(round(duration * rate))

        track = np.zeros(n_samples, dtype=np.int16)
        if speech:
            for start_s, samples in placed:
                track[start_s : start_s + len(samples)] = samples[: n_samples - start_s]
        wav_path = tmp / "audio.wav"
        _write_wav(wav_path, track, rate)

        size = f"{width}x{height}"
        if moving_background:
            bg = (
                f"gradients=s={size}:r={fps}:d={duration}:c0=0x1d2b53:c1=0x7e2553:seed=7:speed=0.02"
            )
        else:
            bg = f"color=c=0x2f4f6f:s={size}:r={fps}:d={duration}"
        filters = ["format=yuv420p"]
        if burn_subtitles:
            _write_ass(tmp / "subs.ass", cues, lang, width, height)
            filters.append("subtitles=subs.ass")
        if watermark:
            (tmp / "watermark.txt").write_text(watermark, encoding="utf-8")
            font = _font_file("zh" if any(ord(ch) > 0x2E80 for ch in watermark) else "en")
            font_opt = f"fontfile={font}:" if font else ""
            fsize = max(12, round(28 * height / 720))
            margin = round(20 * height / 720)
            filters.append(
                f"drawtext={font_opt}textfile=watermark.txt:fontsize={fsize}:"
                f"fontcolor=white@0.85:box=1:boxcolor=black@0.4:boxborderw=6:"
                f"x=w-tw-{margin}:y={margin}"
            )
        cmd = [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            bg,
        ]
        if audio:
            cmd += ["-i", str(wav_path)]
        cmd += ["-vf", ",".join(filters), "-map", "0:v:0"]
        if audio:
            cmd += ["-map", "1:a:0", "-c:a", "aac", "-b:a", "96k"]
        cmd += [
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-r", str(fps), "-frames:v", str(n_frames), "-t", f"{duration:.6f}",
            "-movflags", "+faststart", str(out),
        ]  # fmt: skip
        _run(cmd, cwd=tmp_str)

    truth = GroundTruth(
        video=str(out),
        duration=round(duration, 4),
        lang=lang,
        speech=[Cue(c.start, c.end, c.text) for c in cues] if speech and audio else [],
        subtitles=[Cue(c.start, c.end, c.text) for c in cues] if burn_subtitles else [],
        width=width,
        height=height,
        fps=float(fps),
    )
    truth.to_json(out.with_name(f"{out.stem}.truth.json"))
    return truth


def speech_track(
    sentences: list[str] | None = None, *, rate: int = 16000, lang: str = "en",
    voice: str | None = None, gap: float = 0.6, lead_in: float = 0.5,
) -> tuple[np.ndarray, list[Cue]]:
    """Sentences spoken one after another (espeak-ng) as float32 samples at ``rate``,
    with ``lead_in`` seconds of silence before and after, and their cues."""
    texts = list(sentences) if sentences is not None else SENTENCES_EN[:3]
    voice = voice or _DEFAULT_VOICE[lang]
    pieces: list[np.ndarray] = [np.zeros(int(round(lead_in * rate)), np.int16)]
    cues: list[Cue] = []
    cursor = len(pieces[0])
    with tempfile.TemporaryDirectory(prefix="yivideo-testmedia-") as tmp:
        for i, text in enumerate(texts):
            samples, src_rate = _synthesize(text, voice, Path(tmp) / f"s{i}.wav")
            samples = _resample(samples, src_rate, rate)
            if i:
                pieces.append(np.zeros(int(round(gap * rate)), np.int16))
                cursor += len(pieces[-1])
            cues.append(Cue(round(cursor / rate, 4), round((cursor + len(samples)) / rate, 4),
                            text))
            pieces.append(samples)
            cursor += len(samples)
    pieces.append(np.zeros(int(round(lead_in * rate)), np.int16))
    return np.concatenate(pieces).astype(np.float32) / 32768, cues


def make_speech_music(
    out_dir: str | os.PathLike[str], *, music_db: float = 0.0,
    sentences: list[str] | None = None, rate: int = 16000, seed: int = 0,
) -> tuple[Mix, list[Cue]]:
    """Speech over a music bed ``music_db`` dB relative to the speech (see
    :func:`yivideo.testmusic.mix_at`): writes ``mix.wav`` and the stems ``speech.wav``
    and ``music.wav`` (16-bit) to ``out_dir``; returns the float stems and the cues."""
    speech, cues = speech_track(sentences, rate=rate)
    mix = mix_at(speech, rate, music_db, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, samples in (("mix", mix.mixture), ("speech", mix.speech), ("music", mix.music)):
        _write_wav(out / f"{name}.wav", np.round(np.clip(samples, -1, 1) * 32767), rate)
    return mix, cues


def make_corrupt(out_path: str | os.PathLike[str], *, size: int = 4096, seed: int = 0) -> Path:
    """Write a file named like a video that is not decodable media."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # A truncated 'ftyp' box declaring more bytes than exist, followed by noise.
    header = b"\x00\x00\x7f\xff" + b"ftypisom" + b"\x00\x00\x02\x00"
    out.write_bytes(header + rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: write ``DIR/<name>.mp4`` and its ground truth."""
    parser = argparse.ArgumentParser(
        prog="python -m yivideo.testmedia", description="Generate a test video with ground truth."
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--lang", choices=sorted(_DEFAULT_VOICE), default="en")
    parser.add_argument("--minutes", type=float, default=None, help="minimum length in minutes")
    parser.add_argument("--name", default="sample", help="file stem")
    parser.add_argument("--watermark", default=None, help="static watermark text (top right)")
    parser.add_argument("--no-subtitles", action="store_true", help="do not burn subtitles")
    parser.add_argument("--static", action="store_true", help="solid background")
    args = parser.parse_args(argv)

    out_dir = Path(args.out)
    video = out_dir / f"{args.name}.mp4"
    make_video(
        video,
        lang=args.lang,
        duration_min=args.minutes * 60 if args.minutes is not None else None,
        burn_subtitles=not args.no_subtitles,
        watermark=args.watermark,
        moving_background=not args.static,
    )
    print(video)
    print(out_dir / f"{args.name}.truth.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
