"""Checks on a language model's answer for one subtitle line.

A small model loses, merges and half-translates lines, so every answer is checked before
it replaces the source: not empty, one line per line, no neighbour copied in, not far
longer than the slot allows, in the target language's script; and a proofread line may
change only what speech recognition gets wrong (words that sound alike), not rephrase.
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher

from yivideo.types import Transcript

LANGUAGES = {
    "en": "English", "zh": "Simplified Chinese", "ja": "Japanese", "ko": "Korean",
    "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
    "ru": "Russian", "nl": "Dutch", "vi": "Vietnamese", "id": "Indonesian", "tr": "Turkish",
}
#: The script a language is written in (others: Latin).
SCRIPTS = {"zh": "han", "ja": "japanese", "ko": "hangul", "ru": "cyrillic", "uk": "cyrillic"}


def _script(ch: str) -> str | None:
    """The script of a letter: han, kana, hangul, cyrillic, latin, other; None if no letter."""
    if not ch.isalpha():
        return None
    code = ord(ch)
    if 0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF:
        return "kana"
    if 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
        return "hangul"
    name = unicodedata.name(ch, "")
    if name.startswith("CJK"):
        return "han"
    for script in ("LATIN", "CYRILLIC"):
        if name.startswith(script):
            return script.lower()
    return "other"


def scripts_in(text: str) -> set[str]:
    """The scripts of the letters in ``text``."""
    return {s for ch in text if (s := _script(ch))}


def _allowed(target: str) -> tuple[set[str], set[str]]:
    """(scripts the target's text may hold, of which at least one must appear)."""
    main = SCRIPTS.get(target, "latin")
    if main == "japanese":
        return {"han", "kana", "latin"}, {"han", "kana"}
    return ({main, "latin"}, {main}) if main != "latin" else ({"latin"}, {"latin"})


def script_problem(answer: str, source: str, target: str) -> str | None:
    """Why ``answer`` is not text in ``target``'s script, or None."""
    found, src = scripts_in(answer), scripts_in(source)
    allowed, needed = _allowed(target)
    foreign = found - allowed - {"other"}
    if foreign & src:
        return "source_script_left"
    if foreign:
        return "wrong_script"
    src.discard("other")
    if src and not src & needed and not found & needed:  # needed translating; was not
        return "wrong_script"
    return None


def clean_answer(answer: str) -> str:
    """The answer without the wrappers small models add (quotes, 'Translation:')."""
    text = answer.strip()
    text = re.sub(r"^(translation|translated|corrected|english|line)\s*[:：]\s*", "", text,
                  flags=re.I)
    if len(text) >= 2 and text[0] + text[-1] in ('""', "''", "“”", "「」", "``"):
        text = text[1:-1].strip()
    return text


def check_answer(answer: str, source: str, neighbours: list[str], target: str,
                 duration: float, max_cps: float) -> str | None:
    """Why ``answer`` cannot replace ``source``, or None when it can."""
    if not answer:
        return "empty"
    if len(answer.splitlines()) > max(1, len(source.splitlines())):
        return "extra_lines"  # a neighbour translated too, or an explanation
    if any(len(n) >= 4 and n in answer for n in neighbours):
        return "merged"  # a neighbour's text copied into this line
    if len(answer) > max(40, 4 * len(source), 2 * max_cps * duration):
        return "too_long"
    return script_problem(answer, source, target)


def rewrite_problem(answer: str, source: str) -> str | None:
    """``"rewritten"`` when a proofread line changed more than recognition errors would.

    Recognition errors are words that sound alike: in spaced scripts a replaced word must
    still be spelled much like the old one ("red" -> "read", not "help" -> "assistance")
    and at most one word may come or go; in CJK text at most 2 (or 30 %) characters change.
    """
    if {"han", "kana", "hangul"} & scripts_in(source):
        ops = SequenceMatcher(None, source, answer, autojunk=False).get_opcodes()
        changed = sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in ops if op != "equal")
        return "rewritten" if changed > max(2, 0.3 * len(source)) else None
    old = re.findall(r"\w+(?:'\w+)?", source.lower())
    new = re.findall(r"\w+(?:'\w+)?", answer.lower())
    for op, i1, i2, j1, j2 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        if abs((i2 - i1) - (j2 - j1)) > 1:
            return "rewritten"
        before, after = " ".join(old[i1:i2]), " ".join(new[j1:j2])
        if before and after and SequenceMatcher(None, before, after).ratio() < 0.5:
            return "rewritten"
    return None


def dominant_language(transcript: Transcript) -> str:
    """The transcript's language, or a guess from its script (subtitle files have none)."""
    if transcript.language:
        return transcript.language
    found = scripts_in("".join(s.text for s in transcript.segments))
    for script, language in (("kana", "ja"), ("hangul", "ko"), ("han", "zh"),
                             ("cyrillic", "ru")):
        if script in found:
            return language
    return "en"
