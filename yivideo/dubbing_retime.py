"""Slowing spans of a video so that a dub line fits (the ``slow_video`` policy).

A :class:`Retime` is a list of source spans, each lasting ``extra_s`` longer in the
output. Times after a span shift by its extra; times inside it stretch linearly. The
same map retimes the background audio (``atempo`` below 1, pitch kept) and the video
(``setpts`` on each span, the video re-encoded), so picture, background and dub stay
together.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

import numpy as np

from yivideo.errors import MediaError


@dataclass(frozen=True)
class Span:
    """``[start, end)`` of the source, played ``extra_s`` seconds longer."""

    start: float
    end: float
    extra_s: float

    @property
    def factor(self) -> float:
        """Output length over source length (> 1: slower)."""
        return (self.end - self.start + self.extra_s) / (self.end - self.start)


@dataclass
class Retime:
    """Source time -> output time, piecewise linear; empty: the identity."""

    spans: list[Span] = field(default_factory=list)

    @property
    def extra_s(self) -> float:
        return sum(s.extra_s for s in self.spans)

    def __call__(self, t: float) -> float:
        out = t
        for s in self.spans:
            if t >= s.end:
                out += s.extra_s
            elif t > s.start:
                out += (t - s.start) * (s.factor - 1)
        return out


def _atempo_chain(speed: float) -> str:
    """``atempo`` filters whose product is ``speed`` (each instance takes 0.5..100)."""
    parts = []
    while speed < 0.5:
        parts.append("atempo=0.5")
        speed /= 0.5
    parts.append(f"atempo={speed:.6f}")
    return ",".join(parts)


def stretch(samples: np.ndarray, rate: int, factor: float) -> np.ndarray:
    """Mono ``samples`` played ``factor`` times longer at the same pitch, exactly
    ``round(len * factor)`` samples long."""
    target = int(round(len(samples) * factor))
    if abs(factor - 1) < 1e-6 or len(samples) == 0:
        return samples
    fmt = ["-f", "f32le", "-ar", str(rate), "-ac", "1"]
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", *fmt, "-i", "pipe:0",
         "-af", _atempo_chain(1 / factor), *fmt, "pipe:1"],
        input=np.ascontiguousarray(samples, np.float32).tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise MediaError(f"atempo failed: {proc.stderr.decode(errors='replace')[-300:]}")
    out = np.frombuffer(proc.stdout, np.float32)
    return np.pad(out, (0, max(0, target - len(out))))[:target].astype(np.float32)


def retime_audio(samples: np.ndarray, rate: int, retime: Retime) -> np.ndarray:
    """``samples`` with every span of ``retime`` stretched, the rest as it was."""
    pieces, at = [], 0
    for s in retime.spans:
        a, b = int(round(s.start * rate)), int(round(s.end * rate))
        pieces += [samples[at:a], stretch(samples[a:b], rate, s.factor)]
        at = b
    pieces.append(samples[at:])
    return np.concatenate(pieces).astype(np.float32)


def video_filter(retime: Retime, fps: float) -> str:
    """A filter graph (``[0:v]`` -> ``[v]``) slowing each span with ``setpts``, at a
    constant ``fps`` (frames repeat where the picture is slowed)."""
    cuts, parts, at = [], [], 0.0
    for s in retime.spans:
        cuts += [(at, s.start, 1.0), (s.start, s.end, s.factor)]
        at = s.end
    cuts.append((at, None, 1.0))
    cuts = [c for c in cuts if c[1] is None or c[1] - c[0] > 1e-6]
    graph = [f"[0:v]split={len(cuts)}" + "".join(f"[s{i}]" for i in range(len(cuts)))]
    for i, (a, b, factor) in enumerate(cuts):
        end = f":end={b:.6f}" if b is not None else ""
        graph.append(f"[s{i}]trim=start={a:.6f}{end},setpts={factor:.6f}*(PTS-STARTPTS)"
                     f"[p{i}]")
        parts.append(f"[p{i}]")
    graph.append("".join(parts) + f"concat=n={len(parts)}:v=1:a=0,fps={fps:.6f}[v]")
    return ";".join(graph)
