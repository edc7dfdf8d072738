"""What the text itself says about where a subtitle may break.

Professional guides (Netflix timed-text style guide, BBC subtitle guidelines) break
subtitles at sentence ends, then at clause ends (after punctuation, before a
conjunction), and never right after a word that leans on the next one: an article, a
preposition, a conjunction, a possessive, a subject pronoun or an auxiliary verb.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

SENTENCE_END = ".!?。！？…"
CLAUSE_END = ",;:，；：、—–"
# Quotes and brackets may follow the punctuation that ends a sentence or clause.
CLOSERS = "\"'”’»)]}」』）】"

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
CJK_CLASS = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _CJK_RANGES)

# Words that must not end a subtitle or a line: they belong with the word after them.
_LEANING_EN = frozenset(
    # articles, determiners and possessives
    "a an the this these those my your his her its our their some any each every no "
    "another such "
    # prepositions
    "of in on at to for with by from about into onto over under after before between "
    "through during without within against among upon off near like than via per across "
    "along around behind beyond toward towards "
    # conjunctions and relative words
    "and but or nor yet because although though if when while whereas unless whether "
    "that which who whom whose where as "
    # subject pronouns and auxiliaries, which stay with their verb
    "i we they he she am is are was were be been being have has had do does did will "
    "would shall should can could may might must i'm we're they're he's she's it's "
    "i've we've they've i'll we'll you'll they'll he'll she'll".split()
)
# Words a new clause starts with: a subtitle may start with them.
_CLAUSE_START_EN = frozenset(
    "and but or so because although though if when while whereas unless whether which "
    "who whom whose where that then since until after before".split()
)
# Chinese function words that bind to what follows (structural particles, prepositions,
# conjunctions). Japanese particles are not listed: Japanese breaks after them.
_LEANING_ZH = ("的", "地", "得", "之", "和", "与", "及", "或", "跟", "把", "被", "对", "在",
               "向", "从", "给", "让", "比", "为", "因为", "所以", "但是", "而且", "如果",
               "虽然", "并且", "或者")
_CLAUSE_START_ZH = ("但是", "可是", "不过", "因为", "所以", "而且", "然后", "如果", "虽然",
                    "并且", "或者", "于是", "因此", "而")


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


def is_punct(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


def punct_class(text: str) -> int:
    """2 if ``text`` ends a sentence, 1 if it ends a clause, else 0."""
    stripped = text.rstrip(CLOSERS)
    if not stripped:
        return 0
    if stripped[-1] in SENTENCE_END:
        return 2
    return 1 if stripped[-1] in CLAUSE_END else 0


def _bare_word(text: str) -> str:
    return text.strip().strip("\"'“”‘’«»()[]{}").lower()


def leans_forward(tail: str) -> bool:
    """Whether text ending in ``tail`` ends on a word that belongs with the next one."""
    if not tail or punct_class(tail):
        return False
    if is_cjk(tail[-1]):
        return tail.endswith(_LEANING_ZH)
    words = tail.split()
    return bool(words) and _bare_word(words[-1]) in _LEANING_EN


def starts_clause(head: str) -> bool:
    """Whether text starting with ``head`` opens a clause (a conjunction or relative word)."""
    head = head.lstrip()
    if not head:
        return False
    if is_cjk(head[0]):
        return head.startswith(_CLAUSE_START_ZH)
    return _bare_word(head.split()[0]) in _CLAUSE_START_EN
