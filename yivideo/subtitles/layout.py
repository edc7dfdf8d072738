"""Break one subtitle event's words into lines: few, balanced, at natural places.

Widths are counted in Latin characters; a CJK character counts as
``max_chars_per_line / max_chars_per_line_cjk`` of them, so one limit serves English
(42 per line), Chinese (16 per line) and lines that mix both.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from yivideo.subtitles.language import (
    CJK_CLASS,
    is_cjk,
    is_punct,
    join_lines,
    leans_forward,
    punct_class,
    starts_clause,
)

if TYPE_CHECKING:
    from yivideo.subtitles.segment import SegmentationRules

# Line-break penalties, relative to the squared line length that balances the lines.
_MID_WORD_BREAK = 1e6
_BEFORE_PUNCT_BREAK = 1e5
_LEANING_BREAK = 4.0  # times the plain-break penalty: "the / house" reads badly
_CLAUSE_BREAK = 0.25  # times the plain-break penalty: before "and", "because" …
_TOP_HEAVY = 1 / 16  # times the width, per character the upper line outgrows the lower

# One CJK character, or a run of other non-space characters, with its leading whitespace.
TEXT_TOKEN = re.compile(rf"\s*(?:[{CJK_CLASS}]|[^\s{CJK_CLASS}]+)")


@dataclass(frozen=True, slots=True)
class Token:
    text: str  # the word without surrounding whitespace
    sep: str  # " " if the word is space-separated from the previous one, else ""
    start: float
    end: float
    speaker: str | None
    opens_segment: bool = False  # the recogniser started a new segment here


def cjk_weight(rules: SegmentationRules) -> float:
    """How many Latin characters one CJK character counts as."""
    return rules.max_chars_per_line / rules.max_chars_per_line_cjk


def text_width(text: str, rules: SegmentationRules) -> float:
    """Width of ``text`` in Latin characters."""
    cjk = sum(1 for c in text if is_cjk(c))
    return len(text) - cjk + cjk * cjk_weight(rules)


def line_text(tokens: Sequence[Token]) -> str:
    return tokens[0].text + "".join(t.sep + t.text for t in tokens[1:])


def _break_penalty(prev: Token, nxt: Token, plain: float) -> float:
    """Cost of starting a new line with ``nxt``; punctuation and spaces are the cheap places."""
    if unicodedata.category(nxt.text[0]) in ("Pe", "Pf", "Po") and not nxt.sep:
        # A line should not open with closing or trailing punctuation.
        return _BEFORE_PUNCT_BREAK
    if punct_class(prev.text):
        return 0.0
    a, b = prev.text[-1], nxt.text[0]
    if not nxt.sep and a.isalnum() and b.isalnum() and not is_cjk(a) and not is_cjk(b):
        return _MID_WORD_BREAK
    if leans_forward(prev.text):
        return plain * _LEANING_BREAK
    if starts_clause(nxt.text):
        return plain * _CLAUSE_BREAK
    return plain


def lines_needed(tokens: Sequence[Token], rules: SegmentationRules) -> int:
    """Fewest lines that hold ``tokens`` with no line wider than the limit (if possible)."""
    width = rules.max_chars_per_line
    lines, cur = 1, text_width(tokens[0].text, rules)
    for tok in tokens[1:]:
        add = len(tok.sep) + text_width(tok.text, rules)
        if cur + add <= width + 1e-9:
            cur += add
        else:
            lines, cur = lines + 1, text_width(tok.text, rules)
    return lines


def layout(tokens: Sequence[Token], rules: SegmentationRules) -> list[str]:
    """Lines for an event: as few as fit, balanced, bottom-heavy, broken at natural places."""
    width = rules.max_chars_per_line
    m = len(tokens)
    if m == 1 or text_width(line_text(tokens), rules) <= width + 1e-9:
        return [line_text(tokens)]
    k = lines_needed(tokens, rules)
    # Prefix sums give any line's width: its words plus the separators inside it.
    text_len = [0.0]
    sep_len = [0]
    for tok in tokens:
        text_len.append(text_len[-1] + text_width(tok.text, rules))
        sep_len.append(sep_len[-1] + len(tok.sep))

    def length(a: int, b: int) -> float:
        return text_len[b] - text_len[a] + sep_len[b] - sep_len[a + 1]

    def line_cost(a: int, b: int) -> float:
        size = length(a, b)
        if size > width + 1e-9 and b - a > 1:
            return math.inf
        return size * size

    # Two lines of total length T offset by d from an even split cost T**2 / 2 + 2 * d**2, so
    # this makes a break at punctuation up to a quarter line off centre beat a plain one.
    plain = width * width / 8
    breaks = [0.0] + [_break_penalty(tokens[q - 1], tokens[q], plain) for q in range(1, m)]
    # best[p]: cheapest layout of tokens[:p] in the current number of lines, ending with a
    # line that starts at start[p]; back[l][p] its last break.
    best = [line_cost(0, p) if p else math.inf for p in range(m + 1)]
    start = [0] * (m + 1)
    back: list[list[int]] = [[0] * (m + 1)]
    for level in range(1, k):
        nxt = [math.inf] * (m + 1)
        prev_of = [0] * (m + 1)
        # The last line must end at the last word; earlier levels need every end point.
        for p in range(2, m + 1) if level < k - 1 else (m,):
            for q in range(1, p):
                if best[q] == math.inf:
                    continue
                # A lower line shorter than the one above it reads top-heavy.
                upper = length(start[q], q)
                top_heavy = max(upper - length(q, p), 0.0) * _TOP_HEAVY * width
                cost = best[q] + breaks[q] + line_cost(q, p) + top_heavy
                if cost < nxt[p]:
                    nxt[p], prev_of[p] = cost, q
        best = nxt
        start = prev_of
        back.append(prev_of)
    cuts = [m]
    for level in range(k - 1, 0, -1):
        cuts.append(back[level][cuts[-1]])
    cuts.append(0)
    cuts.reverse()
    return [line_text(tokens[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]


def text_tokens(text: str) -> list[str]:
    """Words of ``text`` (CJK: characters), each with its leading whitespace; punctuation
    written without a space stays with the word before it."""
    pieces: list[str] = []
    for match in TEXT_TOKEN.finditer(text):
        piece = match.group()
        if pieces and all(is_punct(c) for c in piece):
            pieces[-1] += piece
        else:
            pieces.append(piece)
    return pieces


def wrap(text: str, rules: SegmentationRules) -> list[str]:
    """Lines for a fixed piece of text (OCR, translation): the same layout, no timing."""
    tokens = [Token(p.strip(), " " if i and p[0].isspace() else "", 0.0, 0.0, None)
              for i, p in enumerate(text_tokens(" ".join(text.split())))]
    return layout(tokens, rules) if tokens else []


def fit_lines(text: str, rules: SegmentationRules) -> list[str]:
    """Lines of a text whose timing is fixed: kept as they are when they keep the limits,
    else laid out again (extra lines are kept rather than any text dropped)."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) <= rules.max_lines and all(
        text_width(line, rules) <= rules.max_chars_per_line + 1e-9 for line in lines
    ):
        return lines
    return wrap(join_lines(lines), rules)
