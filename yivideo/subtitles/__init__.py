"""Subtitle service: segment timed words into events and write them in subtitle formats."""

from yivideo.subtitles.formats import (
    FORMATS,
    parse,
    render,
    render_formats,
    to_ssafile,
    transcript_json,
)
from yivideo.subtitles.segment import (
    DEFAULT_RULES,
    SegmentationRules,
    join_lines,
    segment_words,
    segments_to_events,
)

__all__ = [
    "DEFAULT_RULES",
    "FORMATS",
    "SegmentationRules",
    "join_lines",
    "parse",
    "render",
    "render_formats",
    "segment_words",
    "segments_to_events",
    "to_ssafile",
    "transcript_json",
]
