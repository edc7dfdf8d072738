"""Chapters of a transcript and the summary's Markdown (the ``llm.summarize`` node).

Chapter times never come from the model: the transcript is cut into a few contiguous
chapters of about equal length at segment starts, so they are ordered and lie within the
media by construction; the model only names them (and writes the summary).
"""

from __future__ import annotations

from typing import Any

from yivideo.subtitles.answers import script_problem
from yivideo.types import Transcript

__all__ = ["chapter_spans", "check_title", "fallback_title", "summary_markdown"]


def chapter_spans(transcript: Transcript, max_chapters: int, min_chapter_s: float
                  ) -> list[tuple[float, float, list[str]]]:
    """``(start, end, texts)`` of each chapter: at most ``max_chapters``, each about
    ``min_chapter_s`` or longer, cut at the segment starts nearest to equal parts; the
    first starts at 0."""
    segs = [s for s in transcript.segments if s.text.strip()]
    if not segs:
        return []
    end = max(transcript.duration or 0.0, segs[-1].end)
    n = max(1, min(max_chapters, int(end // min_chapter_s), len(segs)))
    cuts = [0]
    for k in range(1, n):
        target = k * end / n
        i = min(range(1, len(segs)), key=lambda j: abs(segs[j].start - target))
        i = min(max(i, cuts[-1] + 1), len(segs) - (n - k))  # every chapter keeps a segment
        cuts.append(i)
    cuts.append(len(segs))
    spans = []
    for k in range(n):
        group = segs[cuts[k]:cuts[k + 1]]
        start = 0.0 if k == 0 else group[0].start
        stop = end if k == n - 1 else segs[cuts[k + 1]].start
        spans.append((start, stop, [s.text for s in group]))
    return spans


def check_title(title: str, language: str) -> str | None:
    """Why ``title`` is no chapter title in ``language``, or None."""
    if not title.strip():
        return "empty"
    if len(title.splitlines()) > 1:
        return "extra_lines"
    if len(title) > 80:
        return "too_long"
    return script_problem(title, "", language)


def fallback_title(texts: list[str]) -> str:
    """The chapter's first words, when the model gave no usable title."""
    first = " ".join(texts).strip()
    words = first.split()
    if len(words) > 1:
        return " ".join(words[:6]) + (" ..." if len(words) > 6 else "")
    return first[:16] + ("..." if len(first) > 16 else "")


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def summary_markdown(result: dict[str, Any]) -> str:
    """The summary and chapter list as Markdown (``0:00 Title`` lines, as video sites use)."""
    lines = ["# Summary", "", result.get("summary") or "(no speech)", "", "## Chapters", ""]
    lines += [f"- {_clock(c['start'])} {c['title']}" for c in result.get("chapters", [])]
    return "\n".join(lines) + "\n"
