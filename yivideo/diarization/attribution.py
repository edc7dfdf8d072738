"""Attribution: the speaker of each transcript word, and transcripts split where the
speaker changes.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import replace

from yivideo.diarization.turns import Turn
from yivideo.types import Segment, Transcript, Word

#: A word in no turn takes the speaker of the nearest turn at most this far away (s).
NEAREST_TURN_S = 0.5


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def assign_speakers(
    words: Sequence[Word], turns: Sequence[Turn], max_gap: float = NEAREST_TURN_S
) -> list[str | None]:
    """The speaker of each word: the one whose turns overlap it most; a word in no turn
    takes the nearest turn's speaker if it is within ``max_gap`` seconds, else None."""
    ordered = sorted(turns, key=lambda t: t.start)
    starts = [t.start for t in ordered]
    # reach[i]: latest end among ordered[:i+1], so a backwards scan can stop early.
    reach: list[float] = []
    for t in ordered:
        reach.append(max(t.end, reach[-1]) if reach else t.end)
    result: list[str | None] = []
    for word in words:
        w0, w1 = (word.start, word.end) if word.end >= word.start else (word.end, word.start)
        stop = bisect.bisect_right(starts, w1 + max_gap)
        share: dict[str, float] = {}
        nearest: tuple[float, str] | None = None
        i = stop - 1
        while i >= 0 and reach[i] >= w0 - max_gap:
            t = ordered[i]
            overlap = _overlap(w0, w1, t.start, t.end)
            if overlap > 0 or (w0 == w1 and t.start <= w0 <= t.end):
                share[t.speaker] = share.get(t.speaker, 0.0) + overlap
            else:
                gap = max(t.start - w1, w0 - t.end, 0.0)
                if gap <= max_gap and (nearest is None or gap < nearest[0]):
                    nearest = (gap, t.speaker)
            i -= 1
        if share:
            result.append(max(share.items(), key=lambda kv: kv[1])[0])
        else:
            result.append(nearest[1] if nearest else None)
    return result


def _fill_gaps(speakers: list[str | None]) -> list[str | None]:
    """Give an unattributed word its neighbour's speaker (previous, else next)."""
    out = list(speakers)
    for i in range(1, len(out)):
        if out[i] is None:
            out[i] = out[i - 1]
    for i in range(len(out) - 2, -1, -1):
        if out[i] is None:
            out[i] = out[i + 1]
    return out


def split_by_speaker(transcript: Transcript, turns: Sequence[Turn]) -> Transcript:
    """A copy of ``transcript`` whose segments are cut where the speaker changes.

    Each word gets a speaker (:func:`assign_speakers`); a segment becomes one segment per
    run of words with the same speaker, with that ``speaker``. A word no turn explains
    keeps its neighbour's speaker inside the segment. Segments without words are
    attributed as a whole.
    """
    segments: list[Segment] = []
    for seg in transcript.segments:
        if not seg.words:
            probe = [Word(seg.start, seg.end, seg.text)]
            segments.append(replace(seg, speaker=assign_speakers(probe, turns)[0]))
            continue
        speakers = _fill_gaps(assign_speakers(seg.words, turns))
        runs: list[tuple[str | None, list[Word]]] = []
        for word, speaker in zip(seg.words, speakers, strict=True):
            if runs and runs[-1][0] == speaker:
                runs[-1][1].append(word)
            else:
                runs.append((speaker, [word]))
        if len(runs) == 1:
            segments.append(replace(seg, speaker=runs[0][0], words=list(seg.words)))
            continue
        for i, (speaker, words) in enumerate(runs):
            segments.append(
                replace(
                    seg,
                    start=seg.start if i == 0 else words[0].start,
                    end=seg.end if i == len(runs) - 1 else words[-1].end,
                    text="".join(w.text for w in words).strip(),
                    words=words,
                    speaker=speaker,
                    flags=list(seg.flags),
                )
            )
    return replace(transcript, segments=segments)
