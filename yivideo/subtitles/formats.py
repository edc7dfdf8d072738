"""Write and read subtitle events. SRT, WebVTT and ASS all go through pysubs2."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pysubs2

from yivideo.errors import MediaError
from yivideo.subtitles.language import join_lines
from yivideo.types import Segment, SubtitleEvent, Transcript

FORMATS = ("srt", "vtt", "ass", "json", "txt")
RenderFormat = Literal["srt", "vtt", "ass", "txt"]
ParseFormat = Literal["srt", "vtt", "ass", "json"]

DEFAULT_PREFIX = "[{speaker}] "
_SUBS_FORMATS = ("srt", "vtt", "ass")
# Primary colours for speaker styles, in order of first appearance; chosen to stay readable
# with a black outline.
_SPEAKER_COLORS = (
    pysubs2.Color(255, 235, 59),
    pysubs2.Color(0, 229, 255),
    pysubs2.Color(118, 255, 3),
    pysubs2.Color(255, 128, 171),
    pysubs2.Color(255, 171, 64),
    pysubs2.Color(179, 136, 255),
)


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _ass_name(speaker: str) -> str:
    # Style and actor names are comma-separated fields in ASS; a comma would shift columns.
    return speaker.replace(",", " ").strip() or "_"


def _prefixed(text: str, speaker: str | None, speaker_prefix: str | None) -> str:
    if speaker is None or speaker_prefix is None:
        return text
    # ``replace`` rather than ``format`` so other braces in the prefix stay literal.
    return speaker_prefix.replace("{speaker}", speaker) + text


def to_ssafile(
    events: Sequence[SubtitleEvent],
    *,
    font: str = "Arial",
    font_size: float = 48,
    speaker_prefix: str | None = DEFAULT_PREFIX,
    play_res: tuple[int, int] = (1920, 1080),
) -> pysubs2.SSAFile:
    """Build a subtitle file with a "Default" style and one style per speaker."""
    subs = pysubs2.SSAFile()
    subs.info["PlayResX"] = str(play_res[0])
    subs.info["PlayResY"] = str(play_res[1])
    # Margins and outline scale with the canvas so the look is the same at any resolution.
    margin = round(play_res[1] * 0.05)
    default = pysubs2.SSAStyle(
        fontname=font,
        fontsize=font_size,
        primarycolor=pysubs2.Color(255, 255, 255),
        outlinecolor=pysubs2.Color(0, 0, 0),
        backcolor=pysubs2.Color(0, 0, 0, 128),
        outline=max(1.0, font_size / 16),
        shadow=0.0,
        alignment=pysubs2.Alignment.BOTTOM_CENTER,
        marginl=margin,
        marginr=margin,
        marginv=margin,
    )
    subs.styles = {"Default": default}
    for event in events:
        style = "Default"
        if event.speaker is not None:
            style = _ass_name(event.speaker)
            if style not in subs.styles:
                color = _SPEAKER_COLORS[(len(subs.styles) - 1) % len(_SPEAKER_COLORS)]
                subs.styles[style] = default.copy()
                subs.styles[style].primarycolor = color
        line = pysubs2.SSAEvent(start=_ms(event.start), end=_ms(event.end), style=style)
        if event.speaker is not None:
            line.name = _ass_name(event.speaker)
        line.plaintext = _prefixed(event.text, event.speaker, speaker_prefix)
        subs.append(line)
    return subs


def render(events: Sequence[SubtitleEvent], fmt: RenderFormat, **style: Any) -> str:
    """Render events as SRT, WebVTT, ASS or plain text (one event per line).

    ``style`` is passed to :func:`to_ssafile`; plain text only uses ``speaker_prefix``.
    """
    if fmt == "txt":
        prefix = style.get("speaker_prefix", DEFAULT_PREFIX)
        return "".join(_prefixed(join_lines(e.lines), e.speaker, prefix) + "\n" for e in events)
    if fmt not in _SUBS_FORMATS:
        raise ValueError(f"unknown subtitle format '{fmt}' (known: {', '.join(FORMATS)})")
    return to_ssafile(events, **style).to_string(fmt)


def render_formats(transcript: Transcript, events: Sequence[SubtitleEvent],
                   formats: Sequence[str], **style: Any) -> dict[str, str]:
    """Each of ``formats`` as text: ``json`` is :func:`transcript_json`, the others
    :func:`render` with ``style``."""
    return {fmt: transcript_json(transcript, events) if fmt == "json"
            else render(events, fmt, **style) for fmt in formats}


def _finite(value: Any) -> Any:
    """Replace NaN and infinities, which are not valid JSON, with null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def transcript_json(transcript: Transcript, events: Sequence[SubtitleEvent]) -> str:
    """The transcript (segments with their words) and the subtitle events as JSON."""
    data = transcript.to_dict()
    doc = {
        "language": data["language"],
        "language_probability": data["language_probability"],
        "duration": data["duration"],
        "model": data["model"],
        "segments": data["segments"],
        "events": [
            {"start": e.start, "end": e.end, "text": e.text, "lines": e.lines, "speaker": e.speaker}
            for e in events
        ],
    }
    return json.dumps(_finite(doc), ensure_ascii=False, indent=2)


def _prefix_pattern(speaker_prefix: str) -> re.Pattern[str]:
    head, _, tail = speaker_prefix.partition("{speaker}")
    return re.compile(re.escape(head) + r"(?P<speaker>[^\n]+?)" + re.escape(tail))


def parse(
    text: str, fmt: ParseFormat, *, speaker_prefix: str | None = DEFAULT_PREFIX
) -> list[SubtitleEvent]:
    """Read events back from SRT, WebVTT, ASS (via pysubs2) or :func:`transcript_json` output.

    A leading ``speaker_prefix`` is removed from the text and becomes the event's speaker.
    """
    if fmt == "json":
        return [
            SubtitleEvent(e["start"], e["end"], list(e["lines"]), e.get("speaker"))
            for e in json.loads(text)["events"]
        ]
    if fmt not in _SUBS_FORMATS:
        raise ValueError(f"cannot parse subtitle format '{fmt}'")
    pattern = None
    if speaker_prefix is not None and "{speaker}" in speaker_prefix:
        pattern = _prefix_pattern(speaker_prefix)
    events = []
    for line in pysubs2.SSAFile.from_string(text, format_=fmt):
        if line.is_comment:
            continue
        body = line.plaintext
        speaker = line.name or None
        match = pattern.match(body) if pattern is not None else None
        if match is not None:
            speaker = speaker or match["speaker"]
            body = body[match.end() :]
        events.append(SubtitleEvent(line.start / 1000, line.end / 1000, body.split("\n"), speaker))
    return events


def read_transcript(path: str | Path, encoding: str = "utf-8") -> Transcript:
    """A subtitle file (SRT, WebVTT, ASS; detected from its text) as a transcript."""
    try:
        text = Path(path).read_text(encoding=encoding)
        fmt = pysubs2.formats.autodetect_format(text)
    except (OSError, UnicodeDecodeError, LookupError, pysubs2.exceptions.Pysubs2Error) as e:
        raise MediaError(f"{Path(path).name}: not a readable subtitle file ({e})") from None
    fmt = {"ssa": "ass"}.get(fmt, fmt)
    if fmt not in _SUBS_FORMATS:
        raise MediaError(f"{Path(path).name}: subtitle format '{fmt}' is not supported "
                         f"(use {', '.join(_SUBS_FORMATS)})")
    events = parse(text, fmt)
    segments = [Segment(e.start, e.end, join_lines(e.lines), speaker=e.speaker)
                for e in events]
    return Transcript(language="", language_probability=0.0,
                      duration=max((e.end for e in events), default=0.0), segments=segments)
