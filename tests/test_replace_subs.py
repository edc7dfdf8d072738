"""Subtitle replacement end to end on Ray: `replace-subs` (OCR -> erase -> translate -> burn)
on a video with burnt-in English subtitles, its output read back by the `hardsub` OCR."""

from __future__ import annotations

import re

import jiwer
import pysubs2
import pytest

import yivideo
from yivideo.testmedia import make_video

pytestmark = pytest.mark.usefixtures("ray_cluster")

# Short lines, each one subtitle event in either language.
SENTENCES = ["The weather is lovely today.", "We walked to the park."]


def _letters(text: str) -> str:
    """Lower-case letters and digits only: OCR may join lines or drop an accent's space."""
    return re.sub(r"[\W_]+", "", text.lower())


def test_replace_subs_shows_the_translation_at_the_original_times(tmp_path):
    source = make_video(tmp_path / "en.mp4", sentences=SENTENCES, width=640, height=360,
                        gap=0.4, lead_in=0.5)
    result = yivideo.run("replace-subs", video=source.video, out=tmp_path / "out",
                         overrides=["subtitle_removal.language=en",
                                    "subtitle_translation.target_language=fr"])
    assert result.status == "succeeded", result.state["error"]
    translated = pysubs2.load(str(tmp_path / "out" / "subtitles.fr.srt"), format_="srt")
    # the workflow's own translation: one line per original line, at its times
    assert len(translated) == len(source.subtitles)
    for event, cue in zip(translated, source.subtitles, strict=True):
        assert abs(event.start / 1000 - cue.start) <= 0.1
        assert abs(event.end / 1000 - cue.end) <= 0.1
        assert jiwer.cer(_letters(cue.text), _letters(event.plaintext)) > 0.5  # not English

    again = yivideo.run("hardsub", video=str(tmp_path / "out" / "replaced.mp4"),
                        out=tmp_path / "again", overrides=["subtitle_generation.language=en"])
    assert again.status == "succeeded", again.state["error"]
    read = pysubs2.load(str(tmp_path / "again" / "subtitles.srt"), format_="srt")
    assert len(read) == len(translated)  # the new lines only: nothing of the old remains
    for seen, event in zip(read, translated, strict=True):
        assert jiwer.cer(_letters(event.plaintext), _letters(seen.plaintext)) <= 0.1
        assert abs(seen.start - event.start) <= 100 and abs(seen.end - event.end) <= 100
    for seen in read:
        assert all(jiwer.cer(_letters(cue.text), _letters(seen.plaintext)) > 0.5
                   for cue in source.subtitles)
