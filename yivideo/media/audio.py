"""Audio: decode with ffmpeg, encode WAV, resample, and cut into chunks."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import ffmpeg
import numpy as np

from yivideo.errors import MediaError, NoAudioStream
from yivideo.media.probe import _reason, probe
from yivideo.types import Audio, Span

SAMPLE_RATE = 16000


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


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Mono ``samples`` at ``src_rate`` as float32 at ``dst_rate``, by linear interpolation.

    There is no anti-aliasing filter: when downsampling, content above the new Nyquist
    frequency folds back. Speech has little energy there.
    """
    n_out = int(round(len(samples) * dst_rate / src_rate))
    if len(samples) < 2:
        return np.resize(samples, n_out).astype(np.float32)
    out = np.empty(n_out, dtype=np.float32)
    step = src_rate / dst_rate
    block = 1 << 20  # bounds the index and weight temporaries for hours of audio
    for start in range(0, n_out, block):
        pos = np.minimum(np.arange(start, min(start + block, n_out)) * step, len(samples) - 1)
        idx = np.minimum(pos.astype(np.int64), len(samples) - 2)
        frac = (pos - idx).astype(np.float32)
        left = samples[idx]
        out[start : start + len(pos)] = left + (samples[idx + 1] - left) * frac
    return out


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
