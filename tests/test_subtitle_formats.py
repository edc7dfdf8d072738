"""Subtitle files written by ``render`` read back the same, in pysubs2 and in ffmpeg."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pysubs2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yivideo.subtitles import (
    FORMATS,
    SegmentationRules,
    parse,
    render,
    segment_words,
    segments_to_events,
    to_ssafile,
    transcript_json,
)
from yivideo.types import Segment, SubtitleEvent, Transcript, Word

SUBTITLE_FORMATS = ("srt", "vtt", "ass")
PREFIX = "[{speaker}] "


def ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def in_format(seconds: float, fmt: str) -> int:
    """The time, in ms, that ``fmt`` can store: ms for SRT/VTT, centiseconds for ASS."""
    value = ms(seconds)
    return (value + 5) // 10 * 10 if fmt == "ass" else value


def timed_words(text: str, start: float = 0.5, step: float = 0.45) -> list[Word]:
    return [
        Word(start + i * step, start + i * step + 0.4, " " + w) for i, w in enumerate(text.split())
    ]


def sample_transcript() -> Transcript:
    en = timed_words(
        "Good evening, everyone. Tonight we talk about rivers, mountains and the long road "
        "home. It will be a quiet evening."
    )
    zh_start = en[-1].end + 1.0
    zh = [
        Word(zh_start + i * 0.25, zh_start + i * 0.25 + 0.2, c)
        for i, c in enumerate("今天天气很好，我们去公园散步吧。")
    ]
    return Transcript(
        language="en",
        language_probability=0.97,
        duration=zh[-1].end + 2.0,
        model="large-v3",
        segments=[
            Segment(en[0].start, en[-1].end, "".join(w.text for w in en), en, speaker="A"),
            Segment(zh[0].start, zh[-1].end, "".join(w.text for w in zh), zh, speaker="B"),
        ],
    )


@pytest.fixture
def transcript() -> Transcript:
    return sample_transcript()


@pytest.fixture
def events(transcript: Transcript) -> list[SubtitleEvent]:
    events = segments_to_events(transcript, SegmentationRules())
    assert len(events) >= 3 and any(len(e.lines) == 2 for e in events)
    return events


def expected_text(event: SubtitleEvent, prefix: str | None = PREFIX) -> str:
    if event.speaker is None or prefix is None:
        return event.text
    return prefix.replace("{speaker}", event.speaker) + event.text


@pytest.mark.parametrize("fmt", SUBTITLE_FORMATS)
def test_render_reparses_to_same_texts_and_timings(events: list[SubtitleEvent], fmt: str) -> None:
    subs = pysubs2.SSAFile.from_string(render(events, fmt), format_=fmt)
    lines = [line for line in subs if not line.is_comment]
    assert [line.plaintext for line in lines] == [expected_text(e) for e in events]
    assert [(line.start, line.end) for line in lines] == [
        (in_format(e.start, fmt), in_format(e.end, fmt)) for e in events
    ]


@pytest.mark.parametrize("fmt", SUBTITLE_FORMATS)
def test_parse_round_trip(events: list[SubtitleEvent], fmt: str) -> None:
    back = parse(render(events, fmt), fmt)
    assert [(e.lines, e.speaker) for e in back] == [(e.lines, e.speaker) for e in events]
    for got, want in zip(back, events, strict=True):
        assert ms(got.start) == in_format(want.start, fmt)
        assert ms(got.end) == in_format(want.end, fmt)


def test_without_speaker_prefix(events: list[SubtitleEvent]) -> None:
    srt = render(events, "srt", speaker_prefix=None)
    assert "[A]" not in srt and "[B]" not in srt
    back = parse(srt, "srt", speaker_prefix=None)
    assert [e.lines for e in back] == [e.lines for e in events]
    assert all(e.speaker is None for e in back)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
@pytest.mark.parametrize("fmt", SUBTITLE_FORMATS)
def test_ffmpeg_accepts_rendered_files(
    events: list[SubtitleEvent], fmt: str, tmp_path: Path
) -> None:
    path = tmp_path / f"subs.{fmt}"
    path.write_text(render(events, fmt), encoding="utf-8")
    # ``-f null`` alone has no stream to write for a subtitle-only input, so the subtitles
    # are decoded and re-encoded to SRT on stdout, which also shows what ffmpeg read.
    result = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            "0",
            "-c:s",
            "srt",
            "-f",
            "srt",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    decoded = pysubs2.SSAFile.from_string(result.stdout, format_="srt")
    assert [line.plaintext for line in decoded] == [expected_text(e) for e in events]
    for line, event in zip(decoded, events, strict=True):
        # ffmpeg keeps ASS times in centiseconds and SRT/VTT times in milliseconds.
        assert abs(line.start - in_format(event.start, fmt)) <= 1
        assert abs(line.end - in_format(event.end, fmt)) <= 1


def test_speaker_styles_and_prefixes(events: list[SubtitleEvent]) -> None:
    subs = to_ssafile(events, font="DejaVu Sans", font_size=40, play_res=(1280, 720))
    assert set(subs.styles) == {"Default", "A", "B"}
    assert subs.styles["Default"].fontname == "DejaVu Sans"
    assert subs.styles["Default"].fontsize == 40
    assert subs.styles["A"].primarycolor != subs.styles["B"].primarycolor
    assert (subs.info["PlayResX"], subs.info["PlayResY"]) == ("1280", "720")
    assert [line.style for line in subs] == [e.speaker or "Default" for e in events]
    assert [line.name for line in subs] == [e.speaker or "" for e in events]
    ass = render(events, "ass")
    assert "Style: A," in ass and "Style: B," in ass and "Style: Default," in ass
    srt = render(events, "srt")
    assert "[A] Good evening" in srt and "[B] 今天" in srt
    vtt = render(events, "vtt", speaker_prefix="{speaker}: ")
    assert vtt.startswith("WEBVTT") and "A: Good evening" in vtt
    assert parse(vtt, "vtt", speaker_prefix="{speaker}: ")[0].speaker == "A"


def test_events_without_speaker_use_default_style() -> None:
    events = segment_words(timed_words("plain words without any speaker"))
    subs = to_ssafile(events)
    assert set(subs.styles) == {"Default"}
    assert all(line.style == "Default" for line in subs)
    assert render(events, "srt").count("[") == 0


def test_txt_is_one_event_per_line(events: list[SubtitleEvent]) -> None:
    txt = render(events, "txt")
    lines = txt.splitlines()
    assert len(lines) == len(events)
    assert lines[0].startswith("[A] Good evening")
    assert lines[-1].startswith("[B] ") and " " not in lines[-1][4:]
    for line, event in zip(lines, events, strict=True):
        assert line.replace(" ", "").endswith(event.text.replace("\n", "").replace(" ", ""))
    assert render(events, "txt", speaker_prefix=None).splitlines()[0].startswith("Good")


def test_transcript_json_carries_words_and_events(
    transcript: Transcript, events: list[SubtitleEvent]
) -> None:
    data = json.loads(transcript_json(transcript, events))
    assert list(data) == [
        "language",
        "language_probability",
        "duration",
        "model",
        "segments",
        "events",
    ]
    assert data["language"] == "en" and data["model"] == "large-v3"
    assert data["duration"] == transcript.duration
    assert [len(s["words"]) for s in data["segments"]] == [
        len(s.words) for s in transcript.segments
    ]
    assert data["segments"][0]["words"][0] == {
        "start": 0.5,
        "end": 0.9,
        "text": " Good",
        "probability": 1.0,
    }
    assert Transcript.from_dict({k: v for k, v in data.items() if k != "events"}) == transcript
    assert [e["text"] for e in data["events"]] == [e.text for e in events]
    assert parse(transcript_json(transcript, events), "json") == events
    assert "今天" in transcript_json(transcript, events)


def test_transcript_json_replaces_non_finite_numbers() -> None:
    transcript = Transcript(
        "en", float("nan"), 1.0, [Segment(0.0, 1.0, " hi", [Word(0, 1, " hi")])]
    )
    data = json.loads(transcript_json(transcript, []))
    assert data["language_probability"] is None


def test_unknown_formats_are_rejected(events: list[SubtitleEvent]) -> None:
    assert FORMATS == ("srt", "vtt", "ass", "json", "txt")
    with pytest.raises(ValueError):
        render(events, "json")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        parse("", "txt")  # type: ignore[arg-type]


def test_empty_event_list_renders() -> None:
    for fmt in SUBTITLE_FORMATS:
        assert parse(render([], fmt), fmt) == []
    assert render([], "txt") == ""


# Words that no subtitle format treats as markup; digits are left out because pysubs2's SRT
# reader takes a line holding only a number for the next cue's index.
words_text = st.one_of(
    st.builds(
        lambda w, p: " " + w + p,
        st.text("abcdefghijklmnopqrstuvwxyzÀéü'", min_size=1, max_size=10),
        st.sampled_from(["", "", ",", ".", "?", "!"]),
    ),
    st.sampled_from(list("你好世界今天天气很我们") + ["。", "，"]),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0.0, 1.5), st.floats(0.05, 0.6), words_text, st.sampled_from(["A", None])
        ),
        max_size=40,
    ),
    st.sampled_from(SUBTITLE_FORMATS),
)
def test_generated_events_round_trip(items: list, fmt: str) -> None:
    words, speakers, t = [], [], 0.0
    for pause, duration, text, speaker in items:
        t += pause
        words.append(Word(t, t + duration, text))
        speakers.append(speaker)
        t += duration
    events = segment_words(words, speakers=speakers)
    back = parse(render(events, fmt), fmt)
    assert [(e.lines, e.speaker) for e in back] == [(e.lines, e.speaker) for e in events]
    for got, want in zip(back, events, strict=True):
        assert (ms(got.start), ms(got.end)) == (
            in_format(want.start, fmt),
            in_format(want.end, fmt),
        )
    for prev, nxt in zip(back, back[1:], strict=False):
        assert prev.end <= nxt.start
