"""Group timed words into subtitle events within line, duration and reading-speed limits.

Events are chosen by dynamic programming over word boundaries: every event must satisfy the
rules (a word that cannot satisfy them alone still gets its own event), and among the valid
groupings the cheapest one wins. The cost prefers few, evenly filled events and splits at
sentence ends, then clause ends, then long pauses.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from yivideo.types import Segment, SubtitleEvent, Transcript, Word

SENTENCE_END = ".!?。！？…"
CLAUSE_END = ",;:，；：、"
# Quotes and brackets may follow the punctuation that ends a sentence or clause.
_CLOSERS = "\"'”’»)]}」』）】"

# Costs of the event grouping, in arbitrary units. A split inside a clause costs more than an
# extra event, so events end at punctuation where the limits allow. The punctuation classes
# are further apart than an ordinary pause is worth; only a long silence (over 1.67 s)
# outranks the next better punctuation class. The pause bonus is unbounded so that a long
# silence is not bridged by one event showing text seconds before it is spoken.
_EVENT_COST = 3.0
_FILL_COST = 2.0
_SHORT_COST = 20.0  # times the shortfall below min_duration, as a fraction of max_duration
_CLASS_COST = (10.0, 5.0, 0.0)  # no punctuation, clause end, sentence end
_PAUSE_BONUS = 3.0  # per second of silence at the split
# Line layout penalties, relative to the squared line length (see _layout).
_MID_WORD_BREAK = 1e6
_BEFORE_PUNCT_BREAK = 1e5

_CJK_RANGES = (
    (0x2E80, 0x2FDF),  # radicals
    (0x3000, 0x303F),  # CJK punctuation
    (0x3040, 0x30FF),  # kana
    (0x3100, 0x312F),  # bopomofo
    (0x3190, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0xFF00, 0xFFEF),  # full-width forms
    (0x20000, 0x2FA1F),
)
_CJK_CLASS = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _CJK_RANGES)
# One CJK character, or a run of other non-space characters, with its leading whitespace.
_TEXT_TOKEN = re.compile(rf"\s*(?:[{_CJK_CLASS}]|[^\s{_CJK_CLASS}]+)")


class SegmentationRules(BaseModel):
    """Limits every subtitle event must respect."""

    # Frozen so that the shared default instance cannot be changed by a caller.
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_chars_per_line: int = 42
    max_lines: int = 2
    max_cps: float = 17.0
    min_duration: float = 1.0
    max_duration: float = 7.0
    min_gap: float = 0.08

    @field_validator("max_chars_per_line", "max_lines", "max_cps", "max_duration")
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


@dataclass(frozen=True, slots=True)
class _Token:
    text: str  # the word without surrounding whitespace
    sep: str  # " " if the word is space-separated from the previous one, else ""
    start: float
    end: float
    speaker: str | None


def is_cjk(char: str) -> bool:
    """Whether ``char`` belongs to a script written without spaces between words."""
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


def join_lines(lines: Sequence[str]) -> str:
    """Join subtitle lines into one line, adding a space unless both sides are CJK."""
    out = ""
    for line in lines:
        if out and line and not (is_cjk(out[-1]) and is_cjk(line[0])):
            out += " "
        out += line
    return out


def _punct_class(text: str) -> int:
    """2 if ``text`` ends a sentence, 1 if it ends a clause, else 0."""
    stripped = text.rstrip(_CLOSERS)
    if not stripped:
        return 0
    if stripped[-1] in SENTENCE_END:
        return 2
    return 1 if stripped[-1] in CLAUSE_END else 0


def _is_punct(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


def _prepare(words: Sequence[Word], speakers: Sequence[str | None]) -> list[_Token]:
    """Drop empty words and repair timings so that starts never go backwards or below 0."""
    tokens: list[_Token] = []
    prev_start = 0.0
    pending_space = False
    for word, speaker in zip(words, speakers, strict=True):
        raw = word.text or ""
        text = " ".join(raw.split())
        if not text:
            pending_space = pending_space or bool(raw)
            continue
        sep = " " if (raw[0].isspace() or pending_space) and tokens else ""
        pending_space = raw[-1].isspace()
        start = word.start if math.isfinite(word.start) else prev_start
        start = max(start, prev_start, 0.0)
        end = word.end if math.isfinite(word.end) else start
        tokens.append(_Token(text, sep, start, max(end, start), speaker))
        prev_start = start
    return tokens


def _display_end(
    start: float,
    speech_end: float,
    next_start: float | None,
    rules: SegmentationRules,
    limit: float | None,
) -> float:
    """End of an event: its speech end, stretched toward ``min_duration`` into the silence."""
    end = speech_end
    target = start + rules.min_duration
    if end < target:
        room = next_start - rules.min_gap if next_start is not None else limit
        end = max(end, target if room is None else min(target, room))
    if next_start is not None:
        # Only reachable with overlapping word timings: never overlap the next event.
        end = min(end, next_start)
    return end


def _line_text(tokens: Sequence[_Token]) -> str:
    return tokens[0].text + "".join(t.sep + t.text for t in tokens[1:])


def _break_penalty(prev: _Token, nxt: _Token, scale: float) -> float:
    """Cost of starting a new line with ``nxt``; punctuation and spaces are the cheap places."""
    if unicodedata.category(nxt.text[0]) in ("Pe", "Pf", "Po") and not nxt.sep:
        # A line should not open with closing or trailing punctuation.
        return _BEFORE_PUNCT_BREAK
    if _punct_class(prev.text):
        return 0.0
    a, b = prev.text[-1], nxt.text[0]
    if not nxt.sep and a.isalnum() and b.isalnum() and not is_cjk(a) and not is_cjk(b):
        return _MID_WORD_BREAK
    return scale


def _greedy_lines(tokens: Sequence[_Token], width: int) -> int:
    """Fewest lines that hold ``tokens`` with no line wider than ``width`` (if possible)."""
    lines, cur = 1, len(tokens[0].text)
    for tok in tokens[1:]:
        add = len(tok.sep) + len(tok.text)
        if cur + add <= width:
            cur += add
        else:
            lines, cur = lines + 1, len(tok.text)
    return lines


def _layout(tokens: Sequence[_Token], rules: SegmentationRules) -> list[str]:
    """Break an event's words into the fewest lines, balanced and preferring punctuation."""
    width = rules.max_chars_per_line
    m = len(tokens)
    if m == 1 or len(_line_text(tokens)) <= width:
        return [_line_text(tokens)]
    k = _greedy_lines(tokens, width)
    # Prefix sums give any line's length: its words plus the separators inside it.
    text_len = [0]
    sep_len = [0]
    for tok in tokens:
        text_len.append(text_len[-1] + len(tok.text))
        sep_len.append(sep_len[-1] + len(tok.sep))

    def line_cost(a: int, b: int) -> float:
        length = text_len[b] - text_len[a] + sep_len[b] - sep_len[a + 1]
        if length > width and b - a > 1:
            return math.inf
        return float(length * length)

    # Two lines of total length T offset by d from an even split cost T**2 / 2 + 2 * d**2, so
    # this makes a break at punctuation up to a quarter line off centre beat a plain one.
    scale = width * width / 8
    breaks = [0.0] + [_break_penalty(tokens[q - 1], tokens[q], scale) for q in range(1, m)]
    # best[p]: cheapest layout of tokens[:p] in the current number of lines; back[l][p] its
    # last break.
    best = [line_cost(0, p) if p else math.inf for p in range(m + 1)]
    back: list[list[int]] = [[0] * (m + 1)]
    for level in range(1, k):
        nxt = [math.inf] * (m + 1)
        prev_of = [0] * (m + 1)
        # The last line must end at the last word; earlier levels need every end point.
        for p in range(2, m + 1) if level < k - 1 else (m,):
            for q in range(1, p):
                if best[q] == math.inf:
                    continue
                cost = best[q] + breaks[q] + line_cost(q, p)
                if cost < nxt[p]:
                    nxt[p], prev_of[p] = cost, q
        best = nxt
        back.append(prev_of)
    cuts = [m]
    for level in range(k - 1, 0, -1):
        cuts.append(back[level][cuts[-1]])
    cuts.append(0)
    cuts.reverse()
    return [_line_text(tokens[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]


def _group(tokens: list[_Token], rules: SegmentationRules, limit: float | None) -> list[int]:
    """Return the start index of every event, chosen by minimum total cost."""
    n = len(tokens)
    width = rules.max_chars_per_line
    capacity = width * rules.max_lines
    best = [0.0] + [math.inf] * n
    back = [0] * (n + 1)

    def boundary_cost(j: int) -> float:
        if j == n or tokens[j].speaker != tokens[j - 1].speaker:
            return 0.0
        pause = max(tokens[j].start - tokens[j - 1].end, 0.0)
        return _CLASS_COST[_punct_class(tokens[j - 1].text)] - _PAUSE_BONUS * pause

    for i in range(n):
        first = tokens[i]
        lines, cur = 1, len(first.text)
        chars = len(first.text)
        speech_end = first.end
        for j in range(i + 1, n + 1):
            if j > i + 1:
                tok = tokens[j - 1]
                # Over-long words stand alone; events never mix speakers.
                if max(len(first.text), len(tok.text)) > width or tok.speaker != first.speaker:
                    break
                add = len(tok.sep) + len(tok.text)
                chars += add
                if cur + add <= width:
                    cur += add
                else:
                    lines, cur = lines + 1, len(tok.text)
                speech_end = max(speech_end, tok.end)
                if lines > rules.max_lines or speech_end - first.start > rules.max_duration:
                    break
            next_start = tokens[j].start if j < n else None
            duration = _display_end(first.start, speech_end, next_start, rules, limit) - first.start
            # Lines never contain a line-break separator, so ``chars`` can only overcount.
            if j > i + 1 and chars > rules.max_cps * duration:
                continue
            short = max(rules.min_duration - duration, 0.0) / rules.max_duration
            cost = (
                best[i]
                + _EVENT_COST
                + _FILL_COST * min(chars / capacity, 1.0) ** 2
                + _SHORT_COST * short
                + boundary_cost(j)
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
) -> list[SubtitleEvent]:
    """Group timed words into subtitle events that follow ``rules``.

    ``speakers``, if given, runs parallel to ``words``; an event never mixes speakers.
    ``total_duration`` bounds how far the last event may be stretched toward min_duration.
    """
    if speakers is None:
        speakers = [None] * len(words)
    elif len(speakers) != len(words):
        raise ValueError(f"{len(speakers)} speakers for {len(words)} words")
    tokens = _prepare(words, speakers)
    if not tokens:
        return []
    starts = _group(tokens, rules, total_duration)
    bounds = [*starts, len(tokens)]
    events = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        chunk = tokens[a:b]
        next_start = tokens[b].start if b < len(tokens) else None
        speech_end = max(t.end for t in chunk)
        end = _display_end(chunk[0].start, speech_end, next_start, rules, total_duration)
        events.append(SubtitleEvent(chunk[0].start, end, _layout(chunk, rules), chunk[0].speaker))
    return events


def _approximate_words(segment: Segment) -> list[Word]:
    """Split a segment's text into words timed in proportion to their characters."""
    pieces: list[str] = []
    for match in _TEXT_TOKEN.finditer(segment.text):
        piece = match.group()
        # Punctuation written without a space belongs to the word before it.
        if pieces and all(_is_punct(c) for c in piece):
            pieces[-1] += piece
        else:
            pieces.append(piece)
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
    for segment in transcript.segments:
        seg_words = list(segment.words or _approximate_words(segment))
        if words and seg_words and not seg_words[0].text[:1].isspace():
            # segments meet without a space: add one unless both sides are CJK
            prev, first = words[-1].text.rstrip()[-1:], seg_words[0].text.lstrip()[:1]
            if not (prev and first and is_cjk(prev) and is_cjk(first)):
                seg_words[0] = replace(seg_words[0], text=" " + seg_words[0].text)
        words.extend(seg_words)
        speakers.extend([segment.speaker] * len(seg_words))
    limit = transcript.duration if transcript.duration > 0 else None
    return segment_words(words, rules, speakers=speakers, total_duration=limit)
