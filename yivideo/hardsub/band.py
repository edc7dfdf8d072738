"""Where the subtitles are: the band of the frame in which text recurs while it changes.

A few frames spread over the video are OCR'd and their text blocks clustered by position:
the subtitle band is where blocks recur at the same height while their text changes; a
block whose text never changes (a channel logo, a watermark) is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yivideo.hardsub.recognizer import OCRLine, Recognizer, compact_text, edit_ratio
from yivideo.media import Band, sample_frames, video_info

#: A progress callback: fraction in [0, 1] and a message.
Progress = Callable[[float, str], None]


@dataclass
class _Block:
    sample: int
    y0: int
    y1: int
    x0: int
    x1: int
    text: str
    line_height: int


def _blocks(sample: int, lines: list[OCRLine]) -> list[_Block]:
    """Merge one frame's boxes into blocks: boxes stacked with less than a line between."""
    blocks: list[_Block] = []
    for line in sorted(lines, key=lambda b: b.box[1]):
        x0, y0, x1, y1 = line.box
        h = max(y1 - y0, 1)
        for blk in blocks:
            near = y0 - blk.y1 < 0.6 * h and blk.y0 - y1 < 0.6 * h
            if near and min(x1, blk.x1) > max(x0, blk.x0):
                blk.y0, blk.y1 = min(blk.y0, y0), max(blk.y1, y1)
                blk.x0, blk.x1 = min(blk.x0, x0), max(blk.x1, x1)
                blk.text += "\n" + line.text
                blk.line_height = max(blk.line_height, h)
                break
        else:
            blocks.append(_Block(sample, y0, y1, x0, x1, line.text, h))
    return blocks


def _distinct(texts: list[str], similarity: float) -> int:
    kinds: list[str] = []
    for t in map(compact_text, texts):
        if not any(edit_ratio(t, k) >= similarity for k in kinds):
            kinds.append(t)
    return len(kinds)


def band_from_lines(
    per_sample: list[list[OCRLine]],
    width: int,
    height: int,
    *,
    similarity: float = 0.8,
) -> Band | None:
    """The subtitle band from the OCR of sampled frames, or None when there is none.

    Blocks from all samples are grouped when they overlap vertically (by at least half the
    shorter one) and horizontally. A group is a subtitle band candidate when its text
    changes between samples; one text seen in half the samples or more is a static
    overlay (a logo, a watermark), and one seen once may be scene text. Candidates are
    ranked by the number of distinct texts, then samples with text, then how centred and
    how low they sit. The band spans the frame's width except where a static overlay
    shares its rows.
    """
    blocks = [b for i, lines in enumerate(per_sample) for b in _blocks(i, lines)]
    n = len(blocks)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            a, b = blocks[i], blocks[j]
            overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
            overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
            if overlap_y >= 0.5 * min(a.y1 - a.y0, b.y1 - b.y0) and overlap_x > 0:
                parent[find(i)] = find(j)
    groups: dict[int, list[_Block]] = {}
    for i, blk in enumerate(blocks):
        groups.setdefault(find(i), []).append(blk)

    samples = max(len(per_sample), 1)
    best: tuple[tuple[float, ...], list[_Block]] | None = None
    static: list[list[_Block]] = []
    for members in groups.values():
        by_sample: dict[int, list[_Block]] = {}
        for blk in members:
            by_sample.setdefault(blk.sample, []).append(blk)
        texts = ["\n".join(b.text for b in sorted(v, key=lambda b: b.y0))
                 for v in by_sample.values()]
        present = len(by_sample)
        kinds = _distinct(texts, similarity)
        if kinds < 2 and present >= 0.5 * samples:
            static.append(members)  # a logo or watermark
            continue
        if kinds < 2 and present < 2:
            continue  # seen once: may as well be text in the scene
        cx = (min(b.x0 for b in members) + max(b.x1 for b in members)) / 2
        centred = 1.0 - abs(cx - width / 2) / (width / 2)
        low = max(b.y1 for b in members) / height
        key = (float(kinds), float(present), round(centred, 1), low)
        if best is None or key > best[0]:
            best = (key, members)
    if best is None:
        return None
    members = best[1]
    line_h = int(np.median([b.line_height for b in members]))
    # A line of margin above and half a line below: subtitles usually grow upwards from a
    # fixed bottom line, so a two-line subtitle must fit even if only one line was seen.
    y0 = min(b.y0 for b in members) - line_h
    y1 = max(b.y1 for b in members) + line_h // 2
    # Full width, as a later line may be longer than any seen, except where a static
    # overlay shares the band's rows.
    cx = (min(b.x0 for b in members) + max(b.x1 for b in members)) / 2
    x0, x1 = 0, width
    for blk in (b for group in static for b in group):
        if min(blk.y1, y1) - max(blk.y0, y0) <= 0:
            continue
        if blk.x1 <= cx:
            x0 = max(x0, blk.x1 + line_h // 4)
        elif blk.x0 >= cx:
            x1 = min(x1, blk.x0 - line_h // 4)
    return Band(y0, y1, x0, x1).clip(width, height)


def detect_band(
    path: str | Path,
    recognize: Recognizer,
    *,
    samples: int = 12,
    similarity: float = 0.8,
    progress: Progress | None = None,
) -> Band | None:
    """Find the subtitle band of a video from ``samples`` frames; None if it has none."""
    info = video_info(path)
    frames = sample_frames(path, samples)
    per_sample = []
    for i, (_, image) in enumerate(frames):
        per_sample.append(recognize(image))
        if progress:
            progress((i + 1) / max(len(frames), 1), f"sample {i + 1}/{len(frames)}")
    return band_from_lines(per_sample, info["width"], info["height"], similarity=similarity)
