"""Speaker turns, the audio the models take, and the speakers of a list of turns."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from yivideo.errors import MediaError

SAMPLE_RATE = 16000  # what segmentation-3.0 and CAM++ were trained on


@dataclass(frozen=True)
class Turn:
    """One speaker talking from ``start`` to ``end`` seconds."""

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start



def prepare_audio(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 samples at 16 kHz from mono or multi-channel audio at any rate.

    Multi-channel input may be (samples, channels) or (channels, samples); the shorter
    axis is taken as the channels and averaged.
    """
    data = np.asarray(samples)
    if sample_rate <= 0:
        raise MediaError(f"invalid sample rate {sample_rate}")
    if data.ndim not in (1, 2):
        raise MediaError(f"expected mono or multi-channel samples, got shape {data.shape}")
    if data.dtype.kind in "iu":  # PCM integers: scale to [-1, 1]
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
    if data.ndim == 2:
        axis = 0 if data.shape[0] < data.shape[1] else 1
        data = data.mean(axis=axis, dtype=np.float32)
    data = np.asarray(data, dtype=np.float32)
    if sample_rate != SAMPLE_RATE and data.size:
        from scipy.signal import resample_poly

        # Polyphase filtering: low-passes before decimating, unlike linear interpolation.
        g = math.gcd(SAMPLE_RATE, int(sample_rate))
        data = resample_poly(data, SAMPLE_RATE // g, int(sample_rate) // g).astype(np.float32)
    return np.ascontiguousarray(data)


def speakers_of(turns: Sequence[Turn]) -> list[str]:
    """Distinct speakers in order of first appearance."""
    return list(dict.fromkeys(t.speaker for t in sorted(turns, key=lambda t: t.start)))
