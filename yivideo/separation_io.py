"""Audio with its channels for the separation service: decode a source keeping stereo,
and encode stems as WAV or FLAC."""

from __future__ import annotations

import io
from typing import Literal

import ffmpeg
import numpy as np

from yivideo.errors import MediaError, NoAudioStream
from yivideo.media.probe import probe

__all__ = ["AudioFormat", "decode_channels", "encode"]

AudioFormat = Literal["wav", "flac"]


def decode_channels(path: str, sample_rate: int, max_channels: int = 2) -> np.ndarray:
    """The first audio stream as float32 ``(channels, samples)`` at ``sample_rate``, with
    its own channel count up to ``max_channels`` (more are down-mixed by ffmpeg)."""
    info = probe(path)
    if info["audio"] is None:
        raise NoAudioStream(f"no audio stream in {path}")
    channels = max(1, min(info["audio"]["channels"], max_channels))
    try:
        out, _ = (
            ffmpeg.input(str(path))
            .output("pipe:", format="f32le", acodec="pcm_f32le", ac=channels, ar=sample_rate)
            .global_args("-nostdin", "-v", "error")
            .run(capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error as e:
        raise MediaError(f"cannot decode audio of {path}: "
                         f"{e.stderr.decode(errors='replace').strip()[-300:]}") from None
    return np.frombuffer(out, np.float32).reshape(-1, channels).T.copy()


def encode(samples: np.ndarray, sample_rate: int, fmt: AudioFormat = "wav") -> bytes:
    """16-bit WAV or FLAC bytes of ``samples``: ``(samples,)`` mono or ``(channels, samples)``."""
    import soundfile

    data = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
    buf = io.BytesIO()
    soundfile.write(buf, data.T if data.ndim == 2 else data, sample_rate,
                    format=fmt.upper(), subtype="PCM_16")
    return buf.getvalue()
