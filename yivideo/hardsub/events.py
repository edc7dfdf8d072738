"""Subtitle events: each subtitle in the band read once, with frame-exact start and end.

Every frame is decoded but only the band is looked at, in grey. Frames are sampled at
``sample_fps`` and reduced to signatures (:mod:`yivideo.hardsub.signature`); runs of
samples with the same signature are one stable segment, OCR'd once. Where two samples
differ, the frames between them (kept in a small buffer) are compared one by one, so each
start and end falls on the exact frame, by its own timestamp (VFR-safe).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yivideo.hardsub.band import Progress
from yivideo.hardsub.recognizer import (
    OCRLine,
    Recognizer,
    compact_text,
    edit_ratio,
    join_text_lines,
)
from yivideo.hardsub.signature import is_blank, signature, signature_distance
from yivideo.media import Band, iter_band_frames, video_info


@dataclass
class OCREvent:
    """One subtitle read from the picture; ``box`` (x0, y0, x1, y1) in frame pixels."""

    start: float
    end: float
    text: str
    confidence: float
    box: tuple[int, int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 4),
            "end": round(self.end, 4),
            "text": self.text,
            "confidence": round(self.confidence, 4),
            "box": list(self.box),
        }


@dataclass
class Extraction:
    """What :func:`extract_subtitles` found, and what it cost."""

    events: list[OCREvent]
    band: Band | None
    duration: float
    frames: int = 0
    samples: int = 0
    ocr_calls: int = 0


_KEEP_SAMPLES = 16  # bands a segment keeps to pick the one to read from


@dataclass
class _Segment:
    """A run of frames whose band shows the same thing."""

    start: float
    sig: np.ndarray  # of the latest sample, what the next one is compared with
    empty: bool
    end: float = math.inf
    samples: int = 0
    # Every ``stride``-th sample's band and signature: bounded memory however long the
    # segment, and the middle one (away from fades at either end) is always at hand.
    images: list[np.ndarray] = field(default_factory=list)
    sigs: list[np.ndarray] = field(default_factory=list)
    stride: int = 1

    def add(self, grey: np.ndarray, sig: np.ndarray) -> None:
        self.sig = sig
        if not self.empty and self.samples % self.stride == 0:
            self.images.append(grey)
            self.sigs.append(sig)
            if len(self.images) > _KEEP_SAMPLES:
                self.images, self.sigs = self.images[::2], self.sigs[::2]
                self.stride *= 2
        self.samples += 1


@dataclass
class _Read:
    start: float
    end: float
    text: str
    confidence: float
    box: tuple[int, int, int, int]
    samples: int


def _merge_similar(reads: list[_Read], similarity: float, max_gap: float) -> list[_Read]:
    """Join consecutive reads of (nearly) the same text less than ``max_gap`` apart."""
    out: list[_Read] = []
    for r in reads:
        if out:
            last = out[-1]
            close = r.start - last.end <= max_gap + 1e-6
            if close and edit_ratio(compact_text(last.text), compact_text(r.text)) >= similarity:
                keep = last if last.samples >= r.samples else r  # the longer-seen reading
                box = (min(last.box[0], r.box[0]), min(last.box[1], r.box[1]),
                       max(last.box[2], r.box[2]), max(last.box[3], r.box[3]))
                out[-1] = _Read(last.start, r.end, keep.text, keep.confidence, box,
                                last.samples + r.samples)
                continue
        out.append(r)
    return out


def extract_subtitles(
    path: str | Path,
    recognize: Recognizer,
    band: Band,
    *,
    sample_fps: float = 5.0,
    min_duration: float = 0.2,
    similarity: float = 0.8,
    change_threshold: float = 0.3,
    progress: Progress | None = None,
    clip: tuple[float, float] | None = None,
) -> Extraction:
    """Read the subtitles shown in ``band``: each event with exact start and end frames.

    ``change_threshold`` is the :func:`signature_distance` above which two frames show
    different text. Consecutive readings at least ``similarity`` alike (edit-distance
    ratio, spaces ignored) and at most ``min_duration`` apart are one event; events shorter
    than ``min_duration`` are dropped.

    ``clip`` (start, end) s: only the frames from ``start`` to before ``end`` (one chunk of
    a long video). An event cut by the clip's end ends there, and the events touching the
    clip's edges are kept however short, so that :func:`join_chunks` can join the two
    halves of a subtitle shown across a cut.
    """
    info = video_info(path)
    duration = info["duration"]
    first, stop = clip if clip is not None else (0.0, math.inf)
    length = min(stop, duration) - first
    area = band.clip(info["width"], info["height"])
    period = 1.0 / sample_fps
    reads: list[_Read] = []
    stats = {"frames": 0, "samples": 0, "ocr_calls": 0}
    last_ocr: tuple[np.ndarray, list[OCRLine]] | None = None

    def at_edge(start: float, end: float) -> bool:
        return clip is not None and (start <= first + 1e-6 or end >= stop - 1e-6)

    def read(seg: _Segment) -> None:
        nonlocal last_ocr
        short = seg.end - seg.start < min_duration - 1e-6
        if seg.empty or (short and not at_edge(seg.start, seg.end)):
            return  # nothing to read, or a flicker that would be dropped anyway
        mid = len(seg.images) // 2
        image, sig = seg.images[mid], seg.sigs[mid]
        if last_ocr is not None and signature_distance(last_ocr[0], sig) < change_threshold:
            lines = last_ocr[1]  # the same picture as the last reading (after a blip)
        else:
            lines = recognize(image)
            stats["ocr_calls"] += 1
            last_ocr = (sig, lines)
        texts, conf = join_text_lines(lines)
        if not texts:
            return
        box = (min(b.box[0] for b in lines) + area.x0, min(b.box[1] for b in lines) + area.y0,
               max(b.box[2] for b in lines) + area.x0, max(b.box[3] for b in lines) + area.y0)
        reads.append(_Read(seg.start, seg.end, "\n".join(texts), conf, box, seg.samples))

    current: _Segment | None = None
    between: list[tuple[float, np.ndarray]] = []  # frames since the last sample
    next_sample = -math.inf
    last_t = 0.0
    for t, grey in iter_band_frames(path, area, start=first):
        if t >= stop - 1e-6:
            break  # the next chunk's first frame
        stats["frames"] += 1
        last_t = t
        if t + 1e-6 < next_sample:
            between.append((t, grey))
            continue
        # On a fixed grid, unless a gap in the frames (VFR) left it behind.
        next_sample = next_sample + period if next_sample + period > t else t + period
        stats["samples"] += 1
        sig = signature(grey)
        if current is None:
            current = _Segment(t, sig, is_blank(sig))
            current.add(grey, sig)
        elif signature_distance(current.sig, sig) < change_threshold:
            current.add(grey, sig)
        else:
            # The change happened in (previous sample, this one]: find its exact frames.
            frames = [*between, (t, grey)]
            sigs = [signature(g) for _, g in frames[:-1]] + [sig]
            end = next(ft for (ft, _), s in zip(frames, sigs, strict=True)
                       if signature_distance(current.sig, s) >= change_threshold)
            start = next(ft for (ft, _), s in zip(frames, sigs, strict=True)
                         if ft >= end and signature_distance(sig, s) < change_threshold)
            current.end = end
            read(current)
            current = _Segment(start, sig, is_blank(sig))
            current.add(grey, sig)
        between.clear()
        if progress and length > 0:
            progress(min((t - first) / length, 0.999), f"{t - first:.0f}/{length:.0f} s")
    if current is not None:
        # The last frame is shown for one frame interval, a clip's up to the next chunk.
        fps = info["fps"] or sample_fps
        current.end = stop if stop < duration else max(duration, last_t + 1.0 / fps)
        read(current)
    events = _merge_similar(reads, similarity, min_duration)
    events = [r for r in events
              if r.end - r.start >= min_duration - 1e-6 or at_edge(r.start, r.end)]
    events = _merge_similar(events, similarity, min_duration)
    if progress:
        progress(1.0, f"{len(events)} subtitles")
    return Extraction(
        events=[OCREvent(r.start, r.end, r.text, r.confidence, r.box) for r in events],
        band=area,
        duration=duration,
        frames=stats["frames"],
        samples=stats["samples"],
        ocr_calls=stats["ocr_calls"],
    )


def join_chunks(chunks: list[list[OCREvent]], cuts: list[float], *, similarity: float = 0.8,
                min_duration: float = 0.2) -> list[OCREvent]:
    """The events of consecutive chunks (read with ``clip``) as one list: a subtitle shown
    across the cut ``cuts[i]`` between chunk ``i`` and ``i + 1`` (ending at the cut, and
    the same text starting at the chunk's first frame, at most ``min_duration`` later) is
    one event; events still shorter than
    ``min_duration`` are then dropped, as one pass over the whole video drops them."""
    if len(cuts) != len(chunks) - 1:
        raise ValueError("one cut between every two chunks is needed")
    out: list[OCREvent] = []
    for index, events in enumerate(chunks):
        cut = cuts[index - 1] if index else None
        for event in events:
            last = out[-1] if out else None
            if (cut is not None and last is not None and abs(last.end - cut) < 1e-3
                    and -1e-3 < event.start - cut <= min_duration + 1e-6
                    and edit_ratio(compact_text(last.text), compact_text(event.text))
                    >= similarity):
                keep = last if last.end - last.start >= event.end - event.start else event
                box = (min(last.box[0], event.box[0]), min(last.box[1], event.box[1]),
                       max(last.box[2], event.box[2]), max(last.box[3], event.box[3]))
                out[-1] = OCREvent(last.start, event.end, keep.text, keep.confidence, box)
            else:
                out.append(event)
    return [e for e in out if e.end - e.start >= min_duration - 1e-6]
