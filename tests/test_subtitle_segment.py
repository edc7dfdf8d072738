"""Rules of subtitle segmentation, checked on generated word lists and on worked examples."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from yivideo.subtitles import SegmentationRules, segment_words, segments_to_events
from yivideo.types import Segment, SubtitleEvent, Transcript, Word

EPS = 1e-6
LATIN_PUNCT = ["", "", "", "", ",", ".", "?", "!", ";", ":"]
CJK_CHARS = "你好世界今天天气很我们去公园散步吧觉得怎么样因为阳光明媚空气也新鲜"
CJK_PUNCT = ["", "", "", "，", "。", "！", "？", "、"]
SPEAKERS = ["A", "B", None]

latin_text = st.builds(
    lambda word, punct: " " + word + punct,
    st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12),
    st.sampled_from(LATIN_PUNCT),
)
long_latin_text = st.builds(
    lambda word: " " + word, st.text("abcdefghijklmnopqrstuvwxyz", min_size=40, max_size=90)
)
cjk_text = st.builds(lambda c, p: c + p, st.sampled_from(CJK_CHARS), st.sampled_from(CJK_PUNCT))


def timed(texts: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[float, float, str]]:
    """A word's pause before it, its duration and its text."""
    # Mostly fluent speech, with some longer silences and some zero-length gaps and words.
    pause = st.one_of(
        st.floats(0.0, 0.15),
        st.floats(0.0, 0.6),
        st.just(0.0),
        st.floats(0.0, 4.0),
    )
    duration = st.one_of(st.floats(0.08, 0.5), st.floats(0.0, 1.2))
    return st.tuples(pause, duration, texts)


def build_words(items: list[tuple[float, float, str]], offset: float = 0.0) -> list[Word]:
    words, t = [], offset
    for pause, duration, text in items:
        t += pause
        words.append(Word(t, t + duration, text))
        t += duration
    return words


rules_strategy = st.builds(
    lambda chars, lines, cps, min_d, extra, gap: SegmentationRules(
        max_chars_per_line=chars,
        max_lines=lines,
        max_cps=cps,
        min_duration=min_d,
        max_duration=min_d + extra,
        min_gap=gap,
    ),
    st.integers(8, 60),
    st.integers(1, 3),
    st.floats(8.0, 30.0),
    st.floats(0.0, 2.0),
    st.floats(0.5, 8.0),
    st.floats(0.0, 0.3),
)

word_lists = st.one_of(
    st.lists(timed(latin_text), max_size=80).map(lambda items: ("latin", items)),
    st.lists(timed(latin_text), min_size=20, max_size=80).map(lambda items: ("latin", items)),
    st.lists(timed(cjk_text), min_size=10, max_size=80).map(lambda items: ("cjk", items)),
    st.lists(timed(st.one_of(latin_text, cjk_text)), max_size=80).map(lambda x: ("mixed", x)),
    st.lists(timed(st.one_of(latin_text, long_latin_text)), max_size=40).map(
        lambda items: ("latin", items)
    ),
)


def compact(text: str) -> str:
    return re.sub(r"\s+", "", text)


def assign_words(events: list[SubtitleEvent], words: list[Word]) -> list[list[int]]:
    """Indices of the words each event shows, checking that no word is split or lost."""
    kept = [i for i, w in enumerate(words) if w.text.strip()]
    groups, pos = [], 0
    for event in events:
        target = compact("".join(event.lines))
        got, group = "", []
        while len(got) < len(target):
            assert pos < len(kept), "event text beyond the words"
            group.append(kept[pos])
            got += compact(words[kept[pos]].text)
            pos += 1
        assert got == target, "an event does not hold whole words in order"
        assert group, "empty event"
        groups.append(group)
    assert pos == len(kept), "words missing from the events"
    return groups


def check_events(
    words: list[Word],
    events: list[SubtitleEvent],
    rules: SegmentationRules,
    speakers: list[str | None] | None = None,
    kind: str = "mixed",
) -> list[list[int]]:
    """Assert every segmentation rule on ``events`` made from ``words``."""
    assert compact("".join(e.text for e in events)) == compact("".join(w.text for w in words))
    groups = assign_words(events, words)
    for k, (event, group) in enumerate(zip(events, groups, strict=True)):
        first, last = words[group[0]], words[group[-1]]
        single = len(group) == 1
        duration = event.end - event.start
        assert event.start >= first.start - EPS
        assert event.start == pytest.approx(first.start)
        assert event.start >= 0
        assert event.end >= last.end - EPS, "event ends before its speech"
        assert event.end <= max(last.end, event.start + rules.min_duration) + EPS
        assert 1 <= len(event.lines) <= rules.max_lines
        for line in event.lines:
            assert line and line == line.strip()
            assert len(line) <= rules.max_chars_per_line or single
        if not single:
            assert duration <= rules.max_duration + EPS
            chars = sum(len(line) for line in event.lines)
            assert chars <= rules.max_cps * duration + EPS
        if speakers is not None:
            assert {speakers[i] for i in group} == {event.speaker}
        if kind == "cjk":
            assert all(" " not in line for line in event.lines), event.lines
            assert "".join(event.lines) == "".join(words[i].text for i in group)
        if kind == "latin":
            assert " ".join(event.lines) == "".join(words[i].text for i in group).strip()
        if k + 1 < len(events):
            nxt = events[k + 1]
            assert event.start <= nxt.start
            assert event.end <= nxt.start + EPS, "events overlap"
            if event.end > last.end + EPS:
                assert nxt.start - event.end >= rules.min_gap - EPS, "extension ate the gap"
    return groups


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(word_lists, rules_strategy)
def test_rules_hold_for_generated_words(data: tuple[str, list], rules: SegmentationRules) -> None:
    kind, items = data
    words = build_words(items)
    events = segment_words(words, rules)
    check_events(words, events, rules, kind=kind)


@settings(max_examples=200, deadline=None)
@given(word_lists)
def test_rules_hold_with_default_rules(data: tuple[str, list]) -> None:
    kind, items = data
    words = build_words(items, offset=3.0)
    check_events(words, segment_words(words), SegmentationRules(), kind=kind)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(timed(latin_text), st.sampled_from(SPEAKERS)), max_size=60),
    rules_strategy,
)
def test_events_never_mix_speakers(items: list, rules: SegmentationRules) -> None:
    words = build_words([item for item, _ in items])
    speakers = [speaker for _, speaker in items]
    events = segment_words(words, rules, speakers=speakers)
    check_events(words, events, rules, speakers=speakers, kind="latin")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["", " ", " ok", "好", "  "]), max_size=20))
def test_empty_words_are_skipped(texts: list[str]) -> None:
    words = [Word(i * 0.5, i * 0.5 + 0.4, t) for i, t in enumerate(texts)]
    events = segment_words(words)
    check_events(words, events, SegmentationRules())
    assert bool(events) == any(t.strip() for t in texts)


any_time = st.one_of(
    st.floats(-5.0, 60.0), st.just(float("nan")), st.just(float("inf")), st.just(0.0)
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(any_time, any_time, st.one_of(latin_text, cjk_text)), max_size=50))
def test_broken_timings_still_give_ordered_events(items: list) -> None:
    """Unsorted, overlapping, negative or missing times never yield overlapping events."""
    words = [Word(start, end, text) for start, end, text in items]
    rules = SegmentationRules()
    events = segment_words(words, rules)
    assign_words(events, words)
    for event in events:
        assert 0.0 <= event.start <= event.end < float("inf")
        assert 1 <= len(event.lines) <= rules.max_lines
    for prev, nxt in zip(events, events[1:], strict=False):
        assert prev.start <= nxt.start and prev.end <= nxt.start


def sentence_words(text: str, pauses: dict[int, float] | None = None) -> list[Word]:
    """Words of ``text``, 0.4 s each with 0.05 s gaps, plus extra pauses before some words."""
    pauses = pauses or {}
    items = [(0.05 + pauses.get(i, 0.0), 0.4, " " + w) for i, w in enumerate(text.split())]
    return build_words(items)


def test_empty_input() -> None:
    assert segment_words([]) == []
    assert segments_to_events(Transcript("en", 1.0, 0.0)) == []


def test_sentence_end_beats_mid_clause_split() -> None:
    text = (
        "We walked to the market yesterday. Then we bought apples and pears and plums for everyone"
    )
    # The longest pause lies inside the second sentence; the sentence end still wins.
    words = sentence_words(text, pauses={9: 0.4})
    events = segment_words(words)
    assert len(events) == 2
    assert events[0].text.replace("\n", " ") == "We walked to the market yesterday."
    check_events(words, events, SegmentationRules(), kind="latin")


def test_clause_end_beats_plain_split() -> None:
    text = "the river ran past the old mill and under the bridge, where the children played"
    words = sentence_words(text)
    # The clause end leaves a 53-character line, the widest the limit allows; a plain split
    # would give more even events but is passed over.
    events = segment_words(words, SegmentationRules(max_chars_per_line=55, max_lines=1))
    assert [e.text for e in events] == [
        "the river ran past the old mill and under the bridge,",
        "where the children played",
    ]


def test_longest_pause_without_punctuation() -> None:
    text = "one two three four five six seven eight nine ten eleven twelve"
    words = sentence_words(text, pauses={4: 0.3, 7: 0.6})
    events = segment_words(words, SegmentationRules(max_chars_per_line=40, max_lines=1))
    assert [e.text for e in events] == [
        "one two three four five six seven",
        "eight nine ten eleven twelve",
    ]


def test_long_silence_between_sentences_splits_events() -> None:
    words = sentence_words("Hello there. Are you coming?", pauses={2: 2.5})
    events = segment_words(words)
    assert [e.text for e in events] == ["Hello there.", "Are you coming?"]


def test_cjk_lines_have_no_inserted_spaces() -> None:
    text = (
        "今天天气很好，我们去公园散步吧。你觉得怎么样？"
        + "我觉得非常好，因为阳光明媚，空气也很新鲜。"
    )
    words = build_words([(0.02, 0.2, c) for c in text])
    rules = SegmentationRules(max_chars_per_line=16)
    events = segment_words(words, rules)
    assert "".join("".join(e.lines) for e in events) == text
    for event in events:
        assert all(" " not in line and len(line) <= 16 for line in event.lines)
    check_events(words, events, rules, kind="cjk")
    # Both events end at a sentence end.
    assert [e.lines[-1][-1] for e in events] == ["？", "。"]


def test_line_break_is_balanced_and_prefers_punctuation() -> None:
    words = sentence_words("I never thought we'd see the sea again, but here we are today")
    (event,) = segment_words(words)
    assert event.lines == ["I never thought we'd see the sea again,", "but here we are today"]
    words = sentence_words("one two three four five six seven eight nine ten eleven")
    (event,) = segment_words(words)
    assert event.lines == ["one two three four five six", "seven eight nine ten eleven"]


def test_over_long_word_is_kept_alone() -> None:
    long_word = "pneumonoultramicroscopicsilicovolcanoconiosis" * 2
    words = sentence_words(f"a {long_word} b")
    events = segment_words(words)
    assert [e.text for e in events] == ["a", long_word, "b"]


def test_fast_word_stays_alone_rather_than_dropped() -> None:
    words = [Word(0.0, 0.05, " incomprehensibilities"), Word(0.05, 0.1, " yes")]
    events = segment_words(words, SegmentationRules(min_duration=0.5))
    assert [e.text for e in events] == ["incomprehensibilities", "yes"]
    check_events(words, events, SegmentationRules(min_duration=0.5), kind="latin")


def test_min_duration_extends_into_silence_only() -> None:
    words = [Word(1.0, 1.2, " Hi."), Word(1.5, 1.7, " Yo."), Word(5.0, 5.2, " Bye.")]
    rules = SegmentationRules()
    # Different speakers keep the first two words apart.
    events = segment_words(words, rules, speakers=["A", "B", "B"])
    assert [(e.start, e.text) for e in events] == [(1.0, "Hi."), (1.5, "Yo."), (5.0, "Bye.")]
    assert events[0].end == pytest.approx(1.5 - rules.min_gap)
    assert events[1].end == pytest.approx(2.5)
    assert events[2].end == pytest.approx(6.0)
    # A known media duration caps the last extension.
    last = segment_words(words, rules, speakers=["A", "B", "B"], total_duration=5.6)[-1]
    assert last.end == pytest.approx(5.6)


def test_max_duration_splits_slow_speech() -> None:
    words = build_words([(0.5, 0.5, f" w{c}") for c in "abcdefghijklmnop"])
    events = segment_words(words, SegmentationRules(max_duration=3.0))
    assert len(events) >= 3
    check_events(words, events, SegmentationRules(max_duration=3.0), kind="latin")


def test_speaker_change_splits_events() -> None:
    words = sentence_words("how are you fine thanks")
    events = segment_words(words, speakers=["A", "A", "A", "B", "B"])
    assert [(e.text, e.speaker) for e in events] == [("how are you", "A"), ("fine thanks", "B")]
    with pytest.raises(ValueError):
        segment_words(words, speakers=["A"])


def test_segments_use_words_when_present() -> None:
    words = sentence_words("Good morning. How are you?")
    transcript = Transcript(
        "en", 0.99, 10.0, [Segment(words[0].start, words[-1].end, "ignored", words, "S1")]
    )
    events = segments_to_events(transcript, SegmentationRules())
    assert compact("".join(e.text for e in events)) == "Goodmorning.Howareyou?"
    assert {e.speaker for e in events} == {"S1"}


def test_segments_without_words_fall_back_to_text() -> None:
    text = (
        " We walked to the market yesterday. Then we bought apples, pears and plums for "
        "everyone at the party, and it was great fun!"
    )
    transcript = Transcript(
        "en",
        0.9,
        20.0,
        [Segment(2.0, 10.0, text, speaker="A"), Segment(11.0, 13.0, "这是第二段话。", speaker="B")],
    )
    rules = SegmentationRules()
    events = segments_to_events(transcript, rules)
    assert compact("".join(e.text for e in events)) == compact(text + "这是第二段话。")
    assert events[0].start == 2.0 and events[0].text.startswith("We walked")
    assert max(e.end for e in events if e.speaker == "A") == pytest.approx(10.0)
    assert events[-1].text == "这是第二段话。" and events[-1].speaker == "B"
    assert events[-1].start == 11.0 and events[-1].end == pytest.approx(13.0)
    for prev, nxt in zip(events, events[1:], strict=False):
        assert prev.end <= nxt.start
    for event in events:
        assert all(len(line) <= rules.max_chars_per_line for line in event.lines)
        assert len(event.lines) <= rules.max_lines


def test_rules_validation() -> None:
    with pytest.raises(ValidationError):
        SegmentationRules(min_duration=5.0, max_duration=3.0)
    with pytest.raises(ValidationError):
        SegmentationRules(max_chars_per_line=0)
    with pytest.raises(ValidationError):
        SegmentationRules(max_cps=-1.0)
    with pytest.raises(ValidationError):
        SegmentationRules(min_gap=-0.1)
    with pytest.raises(ValidationError):
        SegmentationRules(max_chars=40)  # type: ignore[call-arg]
