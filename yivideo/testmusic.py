"""A synthetic music bed (chords, bass, arpeggio and a beat) and speech-over-music mixes.

The music is made of tones only, no noise, so that a separator has to tell a voice from
pitched instruments and drums rather than from hiss. Mixes keep their stems, which gives
exact ground truth for separation (SI-SDR) and for speech recognition under music.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Mix", "music_bed", "mix_at", "rms_db", "si_sdr"]

# I - V - vi - IV in C, as MIDI notes of the triads
_PROGRESSION = [(60, 64, 67), (55, 59, 62), (57, 60, 64), (53, 57, 60)]


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _tone(freq: float, n: int, rate: int, harmonics: int, decay_s: float) -> np.ndarray:
    """A plucked note: harmonics up to the Nyquist frequency, exponential decay."""
    t = np.arange(n) / rate
    out = np.zeros(n)
    for k in range(1, harmonics + 1):
        if k * freq < 0.45 * rate:
            out += np.sin(2 * np.pi * k * freq * t) / k
    attack = np.minimum(1.0, t / 0.005)  # no click at the onset
    return out * attack * np.exp(-t / decay_s)


def _kick(n: int, rate: int) -> np.ndarray:
    """A bass drum: a sine falling from 120 to 45 Hz."""
    t = np.arange(n) / rate
    freq = 45 + 75 * np.exp(-t / 0.03)
    phase = 2 * np.pi * np.cumsum(freq) / rate
    return np.sin(phase) * np.exp(-t / 0.12)


def _tick(n: int, rate: int) -> np.ndarray:
    """A hi-hat-like tick from inharmonic partials (tones, not noise)."""
    t = np.arange(n) / rate
    partials = [f for f in (3150.0, 4730.0, 5910.0, 7370.0) if f < 0.45 * rate]
    return sum(np.sin(2 * np.pi * f * t) for f in partials) * np.exp(-t / 0.02)


def music_bed(seconds: float, rate: int = 16000, *, bpm: float = 104.0, seed: int = 0
              ) -> np.ndarray:
    """``seconds`` of music at ``rate``: a chord per bar, bass, arpeggio, kick and ticks.

    ``seed`` shifts the key and the arpeggio pattern. Float32, peak about 1.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    beat = 60.0 / bpm
    out = np.zeros(n + int(5 * beat * rate))  # room for the tail of the last bar
    transpose = int(rng.integers(-3, 4))
    pattern = rng.permutation(3)
    n_beats = int(np.ceil(seconds / beat))
    for b in range(n_beats):
        start = int(round(b * beat * rate))
        chord = [m + transpose for m in _PROGRESSION[(b // 4) % len(_PROGRESSION)]]
        note_n = int(1.5 * beat * rate)
        seg = slice(start, start + note_n)
        if b % 4 == 0:  # the chord, struck once a bar
            long_n = int(4 * beat * rate)
            for m in chord:
                out[start:start + long_n] += 0.25 * _tone(_hz(m), long_n, rate, 6, 1.2)
        if b % 2 == 0:  # bass on beats 1 and 3
            out[seg] += 0.5 * _tone(_hz(chord[0] - 24), note_n, rate, 3, 0.5)
        for half in range(2):  # arpeggio in eighth notes, an octave up
            m = chord[pattern[(2 * b + half) % 3]] + 12
            s = start + int(half * beat / 2 * rate)
            out[s:s + note_n] += 0.2 * _tone(_hz(m), note_n, rate, 4, 0.25)
        kick_n = int(0.4 * rate)
        out[start:start + kick_n] += 0.8 * _kick(kick_n, rate)
        tick_at = start + int(beat / 2 * rate)
        tick_n = int(0.1 * rate)
        out[tick_at:tick_at + tick_n] += 0.15 * _tick(tick_n, rate)
    out = out[:n]
    peak = float(np.max(np.abs(out))) if n else 0.0
    return (out / peak if peak > 0 else out).astype(np.float32)


def rms_db(x: np.ndarray) -> float:
    """Root-mean-square level in dB (full scale 1.0)."""
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio of ``estimate`` against ``reference``, dB."""
    n = min(len(estimate), len(reference))
    est = estimate[:n].astype(np.float64)
    ref = reference[:n].astype(np.float64)
    target = (np.dot(est, ref) / (np.dot(ref, ref) + 1e-20)) * ref
    noise = est - target
    return float(10 * np.log10((np.dot(target, target) + 1e-20) / (np.dot(noise, noise) + 1e-20)))


@dataclass
class Mix:
    """Speech over music with both stems; ``mixture = speech + music``."""

    speech: np.ndarray
    music: np.ndarray
    mixture: np.ndarray
    sample_rate: int
    music_db: float  # music level relative to the speech (whole-clip RMS)


def mix_at(speech: np.ndarray, rate: int, music_db: float = 0.0, *, seed: int = 0,
           peak: float = 0.9) -> Mix:
    """``speech`` (float) with a music bed ``music_db`` dB louder (negative: quieter) than it.

    Levels compare RMS over the whole clip; both stems are then scaled together so the
    mixture peaks at ``peak``, which keeps them exact ground truth.
    """
    speech = np.asarray(speech, np.float64)
    music = music_bed(len(speech) / rate, rate, seed=seed).astype(np.float64)[:len(speech)]
    music *= 10 ** ((rms_db(speech) + music_db - rms_db(music)) / 20)
    scale = peak / max(float(np.max(np.abs(speech + music))), 1e-9)
    s, m = (speech * scale).astype(np.float32), (music * scale).astype(np.float32)
    return Mix(s, m, s + m, rate, music_db)
