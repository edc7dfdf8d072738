"""Speech in noise with exact stems, for measuring denoisers (tests and bench).

Pink noise (power falling as 1/f, like most room and street noise) rather than white:
white noise puts most of its power above the speech band, which a speech denoiser such
as UVR-DeNoise-Lite is not trained to take out.
"""

from __future__ import annotations

import numpy as np

from yivideo.testmusic import Mix, rms_db

__all__ = ["noise_at", "pink_noise"]


def pink_noise(n: int, seed: int = 0) -> np.ndarray:
    """``n`` samples of pink noise (float64, unit RMS) from ``seed``."""
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))  # 1/f power
    noise = np.fft.irfft(spectrum, n)
    return noise / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)


def noise_at(speech: np.ndarray, rate: int, noise_db: float = 0.0, *, seed: int = 0,
             peak: float = 0.9) -> Mix:
    """``speech`` with pink noise ``noise_db`` dB relative to it (whole-clip RMS), both
    scaled together so that the mixture peaks at ``peak``; ``Mix.music`` is the noise."""
    speech = np.asarray(speech, np.float64)
    noise = pink_noise(len(speech), seed) * 10 ** ((rms_db(speech) + noise_db) / 20)
    scale = peak / max(float(np.max(np.abs(speech + noise))), 1e-9)
    s, m = (speech * scale).astype(np.float32), (noise * scale).astype(np.float32)
    return Mix(s, m, s + m, rate, noise_db)
