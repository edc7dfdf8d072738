"""Media access through ffmpeg: probe, decode audio, frames, silence.

Plain functions, no Ray. ffmpeg's failures become :class:`MediaError` with the
reason ffmpeg gave, so a stage fails with a message a person can act on.
"""

from __future__ import annotations

import io
import json
import subprocess
import wave
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np

from yivideo.errors import MediaError, NoAudioStream
from yivideo.types import Audio, Frames, Span

SAMPLE_RATE = 16000


def check_file(path: str | Path) -> Path:
    """The path, if it names a non-empty regular file; else :class:`MediaError`."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"file not found: {p}")
    if not p.is_file():
        raise MediaError(f"not a regular file: {p}")
    if p.stat().st_size == 0:
        raise MediaError(f"empty file: {p}")
    return p


def _reason(err: ffmpeg.Error) -> str:
    lines = [ln for ln in (err.stderr or b"").decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "ffmpeg failed"


def probe(path: str | Path) -> dict[str, Any]:
    """Container and stream facts: duration, video size and rate, audio rate and channels."""
    p = check_file(path)
    try:
        info = ffmpeg.probe(str(p))
    except ffmpeg.Error as e:
        raise MediaError(f"not a readable media file: {p} ({_reason(e)})") from None
    fmt = info.get("format", {})
    video = next((s for s in info["streams"] if s.get("codec_type") == "video"), None)
    audio = next((s for s in info["streams"] if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise MediaError(f"no audio or video stream in {p}")
    result: dict[str, Any] = {
        "path": str(p),
        "format": fmt.get("format_name"),
        "duration": float(fmt.get("duration") or 0.0),
        "size_bytes": int(fmt.get("size") or p.stat().st_size),
        "video": None,
        "audio": None,
    }
    if video is not None:
        num, _, den = str(video.get("avg_frame_rate", "0/1")).partition("/")
        fps = float(num) / float(den) if den and float(den) else 0.0
        result["video"] = {
            "codec": video.get("codec_name"),
            "width": int(video.get("width", 0)),
            "height": int(video.get("height", 0)),
            "fps": round(fps, 3),
        }
    if audio is not None:
        result["audio"] = {
            "codec": audio.get("codec_name"),
            "sample_rate": int(audio.get("sample_rate", 0)),
            "channels": int(audio.get("channels", 0)),
        }
    return result


def decode_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> Audio:
    """Decode the first audio stream to mono float32 at ``sample_rate``."""
    info = probe(path)
    if info["audio"] is None:
        raise NoAudioStream(f"no audio stream in {path}")
    try:
        out, _ = (
            ffmpeg.input(str(path))
            .output("pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=sample_rate)
            .global_args("-nostdin", "-v", "error")
            .run(capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error as e:
        raise MediaError(f"cannot decode audio of {path}: {_reason(e)}") from None
    return Audio(samples=np.frombuffer(out, np.float32).copy(), sample_rate=sample_rate)


def encode_wav(audio: Audio) -> bytes:
    """16-bit PCM WAV bytes of ``audio``."""
    pcm = (np.clip(audio.samples, -1.0, 1.0) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(audio.sample_rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def _video_size(info: dict[str, Any], width: int | None) -> tuple[int, int]:
    if info["video"] is None:
        raise MediaError(f"no video stream in {info['path']}")
    w, h = info["video"]["width"], info["video"]["height"]
    if width and width < w:
        h = max(2, round(h * width / w / 2) * 2)
        w = width
    return w, h


def _read_frames(args: list[str], w: int, h: int, path: str) -> np.ndarray:
    proc = subprocess.run(args, capture_output=True)
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(f"cannot decode frames of {path}: {reason[-1] if reason else '?'}")
    return np.frombuffer(proc.stdout, np.uint8).reshape(-1, h, w, 3)


def extract_frames(path: str | Path, fps: float = 1.0, width: int | None = None) -> Frames:
    """Frames sampled at ``fps`` (RGB), optionally scaled down to ``width``."""
    info = probe(path)
    w, h = _video_size(info, width)
    vf = f"fps={fps},scale={w}:{h}"
    args = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vf", vf,
            "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
    images = _read_frames(args, w, h, str(path))
    # the fps filter puts frame k at k/fps (first frame at 0)
    return Frames(images=images, timestamps=np.arange(len(images)) / fps)


def keyframes(path: str | Path, width: int | None = None) -> Frames:
    """The key (I) frames of the video with their presentation times."""
    info = probe(path)
    w, h = _video_size(info, width)
    try:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey",
             "-show_entries", "frame=pts_time", "-of", "json", str(path)],
            capture_output=True, check=True,
        ).stdout
    except subprocess.CalledProcessError as e:
        raise MediaError(f"cannot read key frames of {path}: {e.stderr.decode()[-200:]}") from None
    times = [float(f["pts_time"]) for f in json.loads(out).get("frames", []) if "pts_time" in f]
    args = ["ffmpeg", "-nostdin", "-v", "error", "-skip_frame", "nokey", "-i", str(path),
            "-vf", f"scale={w}:{h}", "-fps_mode", "passthrough",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
    images = _read_frames(args, w, h, str(path))
    n = min(len(images), len(times))
    return Frames(images=images[:n], timestamps=np.asarray(times[:n]))


def split_fixed(audio: Audio, window_s: float) -> list[Span]:
    """Consecutive windows of ``window_s`` seconds covering the audio."""
    total = audio.duration
    starts = np.arange(0.0, total, window_s)
    return [Span(float(s), float(min(s + window_s, total))) for s in starts]


def split_at_silence(
    audio: Audio,
    max_chunk_s: float = 30.0,
    min_silence_s: float = 0.3,
    threshold_db: float = -40.0,
) -> list[Span]:
    """Chunks of at most ``max_chunk_s`` cut in the middle of silences where possible.

    Silence is 10 ms frames whose RMS is below ``threshold_db`` dBFS, lasting at least
    ``min_silence_s``. A chunk with no silence inside is cut at ``max_chunk_s``.
    """
    sr = audio.sample_rate
    hop = sr // 100
    n = len(audio.samples) // hop
    if n == 0:
        return [Span(0.0, audio.duration)] if len(audio.samples) else []
    frames = audio.samples[: n * hop].reshape(n, hop)
    db = 20 * np.log10(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-10)
    quiet = db < threshold_db
    # midpoints of quiet runs long enough to cut in
    cuts: list[float] = []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], quiet.astype(np.int8), [0]))))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if (b - a) * 0.01 >= min_silence_s:
            cuts.append((a + b) / 2 * 0.01)
    spans: list[Span] = []
    start, total = 0.0, audio.duration
    while total - start > max_chunk_s:
        inside = [c for c in cuts if start < c <= start + max_chunk_s]
        end = inside[-1] if inside else start + max_chunk_s
        spans.append(Span(start, end))
        start = end
    spans.append(Span(start, total))
    return spans
