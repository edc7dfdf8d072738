"""Rules of subtitle segmentation, checked on generated word lists and on worked examples."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from yivideo.subtitles import SegmentationRules, join_lines, segment_words, segments_to_events
from yivideo.subtitles.language import is_cjk
from yivideo.subtitles.layout import fit_lines
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


def width(text: str, rules: SegmentationRules) -> float:
    """Width in Latin characters: a CJK character counts as the two line limits' ratio."""
    cjk = sum(1 for c in text if is_cjk(c))
    return len(text) - cjk + cjk * rules.max_chars_per_line / rules.max_chars_per_line_cjk


def check_events(
    words: list[Word],
    events: list[SubtitleEvent],
    rules: SegmentationRules,
    speakers: list[str | None] | None = None,
    kind: str = "mixed",
    limit: float = math.inf,
) -> list[list[int]]:
    """Assert every segmentation rule on ``events`` made from ``words`` (media ``limit`` s)."""
    assert compact("".join(e.text for e in events)) == compact("".join(w.text for w in words))
    groups = assign_words(events, words)
    for k, (event, group) in enumerate(zip(events, groups, strict=True)):
        first, last = words[group[0]], words[group[-1]]
        nxt = events[k + 1] if k + 1 < len(events) else None
        single = len(group) == 1
        duration = event.end - event.start
        shown = sum(width(line, rules) for line in event.lines)
        assert event.start == pytest.approx(first.start)
        assert event.start >= 0
        # Shown until its speech ends, less the gap before the next event at most.
        speech_end = last.end if nxt is None else min(last.end, nxt.start - rules.min_gap)
        assert event.end >= speech_end - EPS, "event ends before its speech"
        # Extended into silence only as far as the minimum duration and reading speed need.
        text = " ".join("".join(words[i].text for i in group).split())
        need = max(rules.min_duration, width(text, rules) / rules.max_cps)
        assert event.end <= max(last.end, event.start + need) + EPS
        assert 1 <= len(event.lines) <= rules.max_lines
        for line in event.lines:
            assert line and line == line.strip()
            assert width(line, rules) <= rules.max_chars_per_line + EPS or single
        if not single:
            assert duration <= rules.max_duration + EPS
            if shown > rules.max_cps * duration + EPS:
                # Faster than the reading speed only where speech is: the event already
                # stays as long as the next one and max_duration let it.
                room = nxt.start - rules.min_gap if nxt is not None else limit
                longest = min(room, event.start + rules.max_duration)
                assert event.end >= longest - EPS or room <= event.start, "needlessly fast"
        if speakers is not None:
            assert {speakers[i] for i in group} == {event.speaker}
        if kind == "cjk":
            assert all(" " not in line for line in event.lines), event.lines
            assert "".join(event.lines) == "".join(words[i].text for i in group)
        if kind == "latin":
            assert " ".join(event.lines) == "".join(words[i].text for i in group).strip()
        if nxt is not None:
            assert event.start <= nxt.start
            assert event.end <= nxt.start + EPS, "events overlap"
            if nxt.start - event.start > rules.min_gap + EPS:
                assert nxt.start - event.end >= rules.min_gap - EPS, "events closer than the gap"
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
    # One sentence per event.
    assert [e.lines[-1][-1] for e in events] == ["。", "？", "。"]


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


def test_fast_words_are_shown_rather_than_dropped() -> None:
    words = [Word(0.0, 0.05, " incomprehensibilities"), Word(0.05, 0.1, " yes")]
    # The media ends right after them: no silence to read them in.
    events = segment_words(words, SegmentationRules(min_duration=0.5), total_duration=0.1)
    assert [e.text for e in events] == ["incomprehensibilities yes"]
    check_events(words, events, SegmentationRules(min_duration=0.5), kind="latin", limit=0.1)


def test_min_duration_extends_into_silence_only() -> None:
    words = [Word(1.0, 1.2, " Hi."), Word(1.5, 1.7, " Yo."), Word(5.0, 5.2, " Bye.")]
    rules = SegmentationRules()
    # Different speakers keep the first two words apart.
    events = segment_words(words, rules, speakers=["A", "B", "B"])
    assert [(e.start, e.text) for e in events] == [(1.0, "Hi."), (1.5, "Yo."), (5.0, "Bye.")]
    assert events[0].end == pytest.approx(1.5 - rules.min_gap)
    assert events[1].end == pytest.approx(1.5 + rules.min_duration)
    assert events[2].end == pytest.approx(5.0 + rules.min_duration)
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


def spoken(*sentences: str, cps: float = 14.0, pause: float = 1.2) -> list[Word]:
    """Sentences read at ``cps`` characters per second, ``pause`` seconds apart."""
    words, t = [], 0.5
    for sentence in sentences:
        for w in sentence.split():
            duration = (len(w) + 1) / cps
            words.append(Word(t, t + duration, " " + w))
            t += duration
        t += pause
    return words


def test_golden_one_sentence_per_event() -> None:
    sentences = (
        "The weather is lovely today, so we walked to the park.",
        "My brother bought a new bicycle last week.",
        "Please close the window before you leave the room.",
        "Yes.",
    )
    words = spoken(*sentences)
    events = segment_words(words)
    assert [join_lines(e.lines) for e in events] == list(sentences)
    assert events[0].lines == ["The weather is lovely today,", "so we walked to the park."]
    check_events(words, events, SegmentationRules(), kind="latin")


def test_golden_long_sentence_splits_at_its_clause() -> None:
    sentence = (
        "When the concert finally ended after almost three hours, the exhausted audience "
        "stood up and applauded the orchestra for five whole minutes."
    )
    words = spoken(sentence)
    events = segment_words(words)
    assert [join_lines(e.lines) for e in events] == [
        "When the concert finally ended after almost three hours,",
        "the exhausted audience stood up",
        "and applauded the orchestra for five whole minutes.",
    ]
    check_events(words, events, SegmentationRules(), kind="latin")


def test_golden_unpunctuated_speech_never_ends_on_a_leaning_word() -> None:
    text = (
        "we walked down to the river and then we sat on the old bench because it was warm "
        "and the sun was shining over the water while the children played with a ball"
    )
    words = spoken(text)
    events = segment_words(words)
    assert len(events) >= 2
    for event in events:
        last = event.lines[-1].split()[-1]
        assert last not in {"the", "a", "to", "on", "with", "over", "and", "we", "it", "was"}
        for line in event.lines[:-1]:
            assert line.split()[-1] not in {"the", "a", "to", "on", "with", "over"}, event.lines
    # Events after the first open a clause: with a conjunction or the word after a pause.
    assert all(e.text.split()[0] in {"and", "because", "while", "then"} for e in events[1:])
    check_events(words, events, SegmentationRules(), kind="latin")


def test_golden_recogniser_segments_without_punctuation_split_events() -> None:
    first = spoken("the children built a castle of sand", pause=0.0)
    second = [Word(w.start + first[-1].end + 1.0, w.end + first[-1].end + 1.0, w.text)
              for w in spoken("I forgot my umbrella", pause=0.0)]
    transcript = Transcript("en", 1.0, 10.0, [
        Segment(first[0].start, first[-1].end, "", first),
        Segment(second[0].start, second[-1].end, "", second),
    ])
    events = segments_to_events(transcript)
    assert [e.text for e in events] == ["the children built a castle of sand",
                                        "I forgot my umbrella"]


def test_golden_lines_are_bottom_heavy_and_break_before_the_clause() -> None:
    (event,) = segment_words(spoken("The pilot announced that we would land twenty minutes early."))
    assert event.lines == ["The pilot announced", "that we would land twenty minutes early."]


def test_golden_chinese_sentences_and_clauses() -> None:
    sentences = ("今天天气很好，我们去公园散步吧。", "你觉得怎么样？",
                 "我昨天在图书馆借了一本关于中国古代历史的书，因为下个月我们要去西安参观兵马俑。")
    words, t = [], 0.5
    for sentence in sentences:
        for char in sentence:
            words.append(Word(t, t + 0.22, char))
            t += 0.22
        t += 1.0
    rules = SegmentationRules()
    events = segment_words(words, rules)
    texts = ["".join(e.lines) for e in events]
    assert texts[:2] == list(sentences[:2])
    # The long sentence splits at its comma, never after 的 or a preposition.
    assert texts[2:] == ["我昨天在图书馆借了一本关于中国古代历史的书，",
                         "因为下个月我们要去西安参观兵马俑。"]
    for event in events:
        assert all(len(line) <= rules.max_chars_per_line_cjk for line in event.lines)
        assert all(not line.endswith(("的", "在", "关于")) for line in event.lines)
    check_events(words, events, rules, kind="cjk")


def test_fixed_text_is_laid_out_by_the_same_rules() -> None:
    rules = SegmentationRules()
    assert fit_lines("短字幕", rules) == ["短字幕"]
    assert fit_lines("line one\nline two", rules) == ["line one", "line two"]
    long = "这条字幕是从屏幕上识别出来的，它太长了一行放不下所以需要换行"
    lines = fit_lines(long, rules)
    assert "".join(lines) == long and len(lines) == 2
    assert all(len(line) <= rules.max_chars_per_line_cjk for line in lines)
    assert lines[0].endswith("，")
