"""Group timed words into subtitle events the way professional subtitlers do.

Events are chosen by dynamic programming over word boundaries. Every event keeps the hard
limits (lines and their width, time on screen; a word that cannot keep them alone still
gets its own event). Among the valid groupings the cheapest wins: one sentence per event
where it fits, long sentences split at clause ends or before a conjunction, and never
right after a word that belongs with the next one ("the", "of", "and" …). Reading speed
is kept wherever the silence after an event gives the time; speech faster than that is
shown as spoken, never by borrowing another sentence's pause.
An event shows from its first word's start until its last word's end, extended into the
following silence only as far as the minimum duration and the reading speed need.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import replace

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from yivideo.subtitles.language import (
    is_cjk,
    join_lines,
    leans_forward,
    punct_class,
    starts_clause,
)
from yivideo.subtitles.layout import Token, layout, line_text, text_tokens, text_width
from yivideo.types import Segment, SubtitleEvent, Transcript, Word

__all__ = ["DEFAULT_RULES", "SegmentationRules", "is_cjk", "join_lines", "segment_words",
           "segments_to_events"]

# Costs of the event grouping, in arbitrary units. A sentence end is a reward large enough
# to pay for the extra event; a split after a leaning word costs more than several extra
# events. The pause bonus is unbounded so that a long silence is not bridged by one event
# showing text seconds before it is spoken.
_EVENT_COST = 3.0
_FILL_COST = 2.0  # times the squared fill: evenly filled events among equal splits
_SHORT_COST = 20.0  # times the shortfall below min_duration, as a fraction of max_duration
_SENTENCE_SPLIT = -10.0
_CLAUSE_SPLIT = 0.0
_CONJUNCTION_SPLIT = 2.0  # before "and", "because", "which" …
_PLAIN_SPLIT = 8.0
_LEANING_SPLIT = 40.0  # after "the", "of", "and", "we" …
_SEGMENT_SPLIT = 0.0  # where the recogniser started a new segment without punctuation
_PAUSE_BONUS = 5.0  # per second of silence at the split
_SPEED_COST = 10.0  # times the fraction by which an event is faster than max_cps
_EPS = 1e-9


class SegmentationRules(BaseModel):
    """Limits every subtitle event must respect (Netflix / BBC style by default)."""

    # Frozen so that the shared default instance cannot be changed by a caller.
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_chars_per_line: int = 42
    max_chars_per_line_cjk: int = 16
    max_lines: int = 2
    max_cps: float = 20.0
    min_duration: float = 5 / 6
    max_duration: float = 7.0
    min_gap: float = 0.084  # two frames at 24 fps (and at 25 and 30)

    @field_validator("max_chars_per_line", "max_chars_per_line_cjk", "max_lines", "max_cps",
                     "max_duration")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise ValueError("must be a positive number")
        return value

    @field_validator("min_duration", "min_gap")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError("must be zero or a positive number")
        return value

    @model_validator(mode="after")
    def _durations_ordered(self) -> SegmentationRules:
        if self.min_duration >= self.max_duration:
            raise ValueError("min_duration must be less than max_duration")
        return self


DEFAULT_RULES = SegmentationRules()


def _prepare(
    words: Sequence[Word], speakers: Sequence[str | None], segment_starts: Collection[int]
) -> list[Token]:
    """Drop empty words and repair timings so that starts never go backwards or below 0."""
    tokens: list[Token] = []
    prev_start = 0.0
    pending_space = False
    opens = False
    for index, (word, speaker) in enumerate(zip(words, speakers, strict=True)):
        raw = word.text or ""
        text = " ".join(raw.split())
        opens = opens or index in segment_starts
        if not text:
            pending_space = pending_space or bool(raw)
            continue
        sep = " " if (raw[0].isspace() or pending_space) and tokens else ""
        pending_space = raw[-1].isspace()
        start = word.start if math.isfinite(word.start) else prev_start
        start = max(start, prev_start, 0.0)
        end = word.end if math.isfinite(word.end) else start
        tokens.append(Token(text, sep, start, max(end, start), speaker, opens))
        prev_start = start
        opens = False
    return tokens


def display_end(
    start: float,
    speech_end: float,
    width: float,
    next_start: float | None,
    rules: SegmentationRules,
    limit: float | None,
) -> float:
    """When an event leaves the screen.

    At its speech end, stretched into the silence after it as far as ``min_duration`` and
    the reading speed of its ``width`` characters need, never past ``max_duration`` (unless
    the speech itself is longer), and always ``min_gap`` before the next event.
    """
    need = max(rules.min_duration, width / rules.max_cps)
    end = max(speech_end, start + need)
    end = min(end, max(start + rules.max_duration, speech_end))
    if next_start is not None:
        room = next_start - rules.min_gap
        end = min(end, room) if room > start else min(end, next_start)
    elif limit is not None:
        end = min(end, max(limit, speech_end))
    return max(end, start)


def _split_costs(tokens: Sequence[Token]) -> list[float]:
    """Cost of ending an event before token ``j``, for j in 0..n (the ends cost nothing).

    A recogniser's segment boundary without punctuation (Whisper often drops the full stop
    before a pause) is a clause end at least, unless the word before it leans forward.
    """
    costs = [0.0] * (len(tokens) + 1)
    for j in range(1, len(tokens)):
        prev, nxt = tokens[j - 1], tokens[j]
        if prev.speaker != nxt.speaker:
            continue
        cls = punct_class(prev.text)
        if cls == 2:
            cost = _SENTENCE_SPLIT
        elif cls == 1:
            cost = _CLAUSE_SPLIT
        elif leans_forward(line_text(tokens[max(j - 3, 0) : j])):
            cost = _LEANING_SPLIT
        elif nxt.opens_segment:
            cost = _SEGMENT_SPLIT
        elif starts_clause(line_text(tokens[j : j + 3])):
            cost = _CONJUNCTION_SPLIT
        else:
            cost = _PLAIN_SPLIT
        costs[j] = cost - _PAUSE_BONUS * max(nxt.start - prev.end, 0.0)
    return costs


def _group(tokens: list[Token], rules: SegmentationRules, limit: float | None) -> list[int]:
    """Return the start index of every event, chosen by minimum total cost."""
    n = len(tokens)
    width = rules.max_chars_per_line
    capacity = width * rules.max_lines
    widths = [text_width(t.text, rules) for t in tokens]
    splits = _split_costs(tokens)
    best = [0.0] + [math.inf] * n
    back = [0] * (n + 1)
    for i in range(n):
        first = tokens[i]
        lines, cur = 1, widths[i]
        chars = widths[i]
        speech_end = first.end
        for j in range(i + 1, n + 1):
            if j > i + 1:
                tok = tokens[j - 1]
                # Over-long words stand alone; events never mix speakers.
                if max(widths[i], widths[j - 1]) > width + _EPS or tok.speaker != first.speaker:
                    break
                add = len(tok.sep) + widths[j - 1]
                chars += add
                if cur + add <= width + _EPS:
                    cur += add
                else:
                    lines, cur = lines + 1, widths[j - 1]
                speech_end = max(speech_end, tok.end)
                if lines > rules.max_lines or speech_end - first.start > rules.max_duration:
                    break
            next_start = tokens[j].start if j < n else None
            end = display_end(first.start, speech_end, chars, next_start, rules, limit)
            duration = end - first.start
            # Speech faster than the reading speed costs by how much faster it is; a
            # grouping that borrows time from the next sentence's pause costs more still.
            too_fast = min(max(chars / (rules.max_cps * max(duration, 0.05)) - 1, 0.0), 10.0)
            short = max(rules.min_duration - duration, 0.0) / rules.max_duration
            cost = (
                best[i]
                + _EVENT_COST
                + _FILL_COST * min(chars / capacity, 1.0) ** 2
                + _SHORT_COST * short
                + _SPEED_COST * too_fast
                + splits[j]
            )
            if cost < best[j]:
                best[j], back[j] = cost, i
    starts = []
    j = n
    while j > 0:
        j = back[j]
        starts.append(j)
    return starts[::-1]


def segment_words(
    words: Sequence[Word],
    rules: SegmentationRules = DEFAULT_RULES,
    *,
    speakers: Sequence[str | None] | None = None,
    total_duration: float | None = None,
    segment_starts: Collection[int] = (),
) -> list[SubtitleEvent]:
    """Group timed words into subtitle events that follow ``rules``.

    ``speakers``, if given, runs parallel to ``words``; an event never mixes speakers.
    ``total_duration`` bounds how far the last event may be extended into silence.
    ``segment_starts`` are the indices of words that open a recogniser's segment.
    """
    if speakers is None:
        speakers = [None] * len(words)
    elif len(speakers) != len(words):
        raise ValueError(f"{len(speakers)} speakers for {len(words)} words")
    tokens = _prepare(words, speakers, frozenset(segment_starts))
    if not tokens:
        return []
    starts = _group(tokens, rules, total_duration)
    bounds = [*starts, len(tokens)]
    events = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        chunk = tokens[a:b]
        next_start = tokens[b].start if b < len(tokens) else None
        speech_end = max(t.end for t in chunk)
        width = text_width(line_text(chunk), rules)
        end = display_end(chunk[0].start, speech_end, width, next_start, rules, total_duration)
        events.append(SubtitleEvent(chunk[0].start, end, layout(chunk, rules), chunk[0].speaker))
    return events


def _approximate_words(segment: Segment) -> list[Word]:
    """Split a segment's text into words timed in proportion to their characters."""
    pieces = text_tokens(segment.text)
    # A word's share includes the space before it, so that reading speed over any run of
    # words matches the segment's overall characters per second.
    weights = [len(p.strip()) + (1 if i and p[0].isspace() else 0) for i, p in enumerate(pieces)]
    total = sum(weights)
    start = max(segment.start, 0.0)
    span = max(segment.end - start, 0.0)
    words, done = [], 0
    for piece, weight in zip(pieces, weights, strict=True):
        t0 = start + span * done / total
        done += weight
        words.append(Word(t0, start + span * done / total, piece))
    return words


def segments_to_events(
    transcript: Transcript, rules: SegmentationRules = DEFAULT_RULES
) -> list[SubtitleEvent]:
    """Subtitle events for a transcript, from word timings where the segments have them."""
    words: list[Word] = []
    speakers: list[str | None] = []
    starts: list[int] = []
    for segment in transcript.segments:
        starts.append(len(words))
        seg_words = list(segment.words or _approximate_words(segment))
        if words and seg_words and not seg_words[0].text[:1].isspace():
            # segments meet without a space: add one unless both sides are CJK
            prev, first = words[-1].text.rstrip()[-1:], seg_words[0].text.lstrip()[:1]
            if not (prev and first and is_cjk(prev) and is_cjk(first)):
                seg_words[0] = replace(seg_words[0], text=" " + seg_words[0].text)
        words.extend(seg_words)
        speakers.extend([segment.speaker] * len(seg_words))
    limit = transcript.duration if transcript.duration > 0 else None
    return segment_words(words, rules, speakers=speakers, total_duration=limit,
                         segment_starts=starts)
