"""Speaker diarization: the service run directly (no Ray) on generated dialogues.

Dialogues are spoken by clearly different espeak-ng voices at known turns, so the truth is
exact. Tests that need the models skip only when torch or pyannote.audio is not
installed; attribution, RTTM and audio preparation need neither.
"""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from bench.diarize import (
    HELDOUT_POOL,
    HELDOUT_SENTENCES,
    VOICES,
    Dialogue,
    der,
    make_dialogue,
    synthesize,
)
from yivideo.diarization import (
    SAMPLE_RATE,
    Turn,
    absorb_small,
    assign_speakers,
    estimate_partition,
    exact_partition,
    parse_rttm,
    prepare_audio,
    speakers_of,
    split_by_speaker,
    to_json,
    to_rttm,
)
from yivideo.errors import MediaError
from yivideo.nodes import NodeContext
from yivideo.subtitles import render, segments_to_events
from yivideo.types import Audio, Segment, Transcript, Word

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")  # no usage reports from tests
MAX_DER = 0.15  # with a 0.25 s collar on each side of every reference boundary


def _missing() -> str | None:
    for module in ("torch", "pyannote.audio"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return f"{module} is not installed (speaker diarization dependencies)"
    return None


needs_models = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def service():
    from actors.diarize import DiarizationService
    from yivideo.settings import Settings

    return DiarizationService(Settings())


@pytest.fixture(scope="module")
def two() -> Dialogue:
    return make_dialogue(VOICES[:2], 10, seed=1)


@pytest.fixture(scope="module")
def three() -> Dialogue:
    return make_dialogue(VOICES[:3], 12, seed=2)


@pytest.fixture(scope="module")
def unlike() -> Dialogue:
    """Three voices and sentences the threshold was never tuned on (bench held-out pool)."""
    voices = (HELDOUT_POOL[0], HELDOUT_POOL[3], HELDOUT_POOL[4])  # croak, grandma, Storm
    return make_dialogue(voices, 10, sentences=HELDOUT_SENTENCES, seed=7)


def _diarize(service, samples: np.ndarray, rate: int = SAMPLE_RATE, **params):
    from actors.diarize import SpeakersParams

    ctx = NodeContext(min_interval_s=0)
    out = service.speakers(ctx, SpeakersParams(device="cpu", **params), Audio(samples, rate))
    return out["turns"], ctx.artifacts


def _found(turns: list[Turn]) -> int:
    return len({t.speaker for t in turns})


# --------------------------------------------------------------------------- with models


@needs_models
def test_voices_differ():
    """The test voices are far apart for CAM++, and one voice is close to itself."""
    import torch

    from yivideo.diarization import builtin_model_paths, campplus_model

    model = campplus_model(builtin_model_paths()[1])
    texts = ["The train to the city leaves at nine.", "Please close the window tonight."]
    emb = {}
    for voice in VOICES:
        vecs = []
        for text in texts:
            wave = torch.from_numpy(synthesize(text, voice))[None, None]
            with torch.inference_mode():
                vec = model(wave)[0].numpy()
            vecs.append(vec / np.linalg.norm(vec))
        emb[voice] = np.array(vecs)
    for a in VOICES:
        assert float(emb[a][0] @ emb[a][1]) > 0.7, a
        for b in VOICES:
            if a < b:
                assert float((emb[a] @ emb[b].T).max()) < 0.6, (a, b)


@needs_models
def test_two_speakers(service, two):
    progress: list[float] = []
    from actors.diarize import SpeakersParams

    ctx = NodeContext(report=lambda f, _m: progress.append(f), min_interval_s=0)
    turns = service.speakers(ctx, SpeakersParams(device="cpu"), Audio(two.samples, SAMPLE_RATE))[
        "turns"
    ]
    assert _found(turns) == 2
    assert der(two.turns, turns) <= MAX_DER
    assert progress and progress[-1] == 1.0
    assert turns == sorted(turns, key=lambda t: t.start)
    assert speakers_of(turns) == ["SPEAKER_00", "SPEAKER_01"]
    # Artifacts: the RTTM reads back to the same turns; the JSON lists them too.
    rttm = ctx.artifacts["diarization.rttm"].decode()
    assert [(t.speaker, t.start) for t in parse_rttm(rttm)] == [(t.speaker, t.start) for t in turns]
    for got, want in zip(parse_rttm(rttm), turns, strict=True):
        assert got.end == pytest.approx(want.end, abs=2e-3)
    doc = json.loads(ctx.artifacts["diarization.json"])
    assert doc["speakers"] == ["SPEAKER_00", "SPEAKER_01"]
    assert len(doc["turns"]) == len(turns) and doc["duration"] == pytest.approx(two.duration, 1e-3)
    # The pipeline is built once and kept.
    health = service.health()
    assert len(health["models"]) == 1 and health["models"][0]["device"] == "cpu"
    _diarize(service, two.samples[: SAMPLE_RATE * 5])
    assert len(service.health()["models"]) == 1


@needs_models
def test_three_speakers_counted(service, three):
    turns, _ = _diarize(service, three.samples)
    assert _found(turns) == 3
    assert der(three.turns, turns) <= MAX_DER


@needs_models
def test_speaker_count_bounds(service, three):
    turns, _ = _diarize(service, three.samples, max_speakers=2)
    assert _found(turns) == 2
    turns, _ = _diarize(service, three.samples, num_speakers=3, clustering_threshold=1.9)
    assert _found(turns) == 3


@needs_models
def test_unfamiliar_voices_counted(service, unlike):
    turns, _ = _diarize(service, unlike.samples)
    assert _found(turns) == 3
    assert der(unlike.turns, turns) <= MAX_DER


@needs_models
def test_count_options_are_honoured(service, unlike):
    # One pass (max_speakers on one pass: test_speaker_count_bounds).
    turns, _ = _diarize(service, unlike.samples, num_speakers=2)
    assert _found(turns) == 2
    # The chunked path honours them too (windows of 15 s over a ~35 s dialogue).
    assert unlike.duration > 1.5 * 15
    turns, _ = _diarize(service, unlike.samples, chunk_s=15, num_speakers=2)
    assert _found(turns) == 2
    turns, _ = _diarize(service, unlike.samples, chunk_s=15, max_speakers=2)
    assert _found(turns) <= 2
    turns, _ = _diarize(service, unlike.samples, chunk_s=15)
    assert _found(turns) == 3


@needs_models
# End to end for two layouts; every layout's conversion: test_prepare_audio_formats.
@pytest.mark.parametrize("layout", ["stereo", "int16_44k"])
def test_input_formats(service, two, layout):
    x = two.samples
    if layout == "stereo":  # (samples, 2), the right channel quieter
        samples, rate = np.stack([x, 0.5 * x], axis=1), SAMPLE_RATE
    else:
        from scipy.signal import resample_poly

        wide = resample_poly(x, 441, 160)
        samples, rate = (np.clip(wide, -1, 1) * 32767).astype(np.int16), 44100
    turns, _ = _diarize(service, samples, rate)
    assert _found(turns) == 2
    assert der(two.turns, turns) <= MAX_DER


@needs_models
def test_silence_has_no_speakers(service):
    for samples in (
        np.zeros(SAMPLE_RATE * 8, np.float32),
        np.zeros(0, np.float32),
        # Faint noise reaches the models, which find no speech in it.
        np.random.default_rng(0).normal(0, 1e-3, SAMPLE_RATE * 8).astype(np.float32),
    ):
        turns, artifacts = _diarize(service, samples)
        assert turns == []
        assert artifacts["diarization.rttm"] == b""
        assert json.loads(artifacts["diarization.json"])["turns"] == []


@needs_models
def test_attribute_splits_segments_for_subtitles(service, two):
    """Segments spanning two speakers are cut at the change; subtitles then show who."""
    from actors.diarize import AttributeParams

    turns, _ = _diarize(service, two.samples)
    # Each ASR segment covers two true turns, its words spread evenly over them.
    segments = []
    for a, b in zip(two.turns[0::2], two.turns[1::2], strict=False):
        words = []
        for turn, text in ((a, "one two three four"), (b, "five six seven")):
            tokens = text.split()
            step = turn.duration / len(tokens)
            words += [Word(turn.start + i * step, turn.start + (i + 1) * step, " " + w)
                      for i, w in enumerate(tokens)]  # fmt: skip
        segments.append(Segment(a.start, b.end, "".join(w.text for w in words).strip(), words))
    transcript = Transcript("en", 1.0, two.duration, segments)
    out = service.attribute(NodeContext(), AttributeParams(), transcript, turns)["transcript"]
    assert len(out.segments) == 2 * len(segments)
    truth_to_hyp = {}
    for seg in out.segments:
        assert seg.speaker is not None
        true = next(t.speaker for t in two.turns if t.start <= seg.words[0].start < t.end)
        assert truth_to_hyp.setdefault(true, seg.speaker) == seg.speaker
    assert len(set(truth_to_hyp.values())) == 2
    assert out.words == transcript.words  # no word lost, changed or reordered
    events = segments_to_events(out)
    assert {e.speaker for e in events} == set(truth_to_hyp.values())
    srt = render(events, "srt")
    assert "[SPEAKER_00] " in srt and "[SPEAKER_01] " in srt
    assert "Style: SPEAKER_01" in render(events, "ass")


@needs_models
def test_pipeline_override_errors(tmp_path):
    from yivideo.diarization import build_pipeline
    from yivideo.errors import ModelNotFound
    from yivideo.settings import ModelSettings

    offline = ModelSettings(model_dirs=[tmp_path], cache_dir=tmp_path / "cache")
    with pytest.raises(ModelNotFound, match="downloads are disabled"):
        build_pipeline("someone/some-pipeline", offline, device="cpu")
    # A pipeline directory found by name under model_dirs whose model file is missing.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.yaml").write_text(
        "pipeline:\n  name: pyannote.audio.pipelines.SpeakerDiarization\n  params:\n"
        f"    segmentation: {tmp_path / 'missing.bin'}\n"
        "    clustering: OracleClustering\n"
    )
    with pytest.raises(ModelNotFound, match="could not load diarization pipeline"):
        build_pipeline("mine", offline, device="cpu")
    from actors.diarize import DiarizationService, SpeakersParams
    from yivideo.settings import Settings

    service = DiarizationService(Settings(models=offline))
    with pytest.raises(ModelNotFound):
        service.speakers(NodeContext(), SpeakersParams(pipeline="mine", device="cpu"),
                         Audio(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE))  # fmt: skip
    assert service.health()["models"] == []


# --------------------------------------------------------------------------- no models


def _t(start: float, end: float, speaker: str) -> Turn:
    return Turn(start, end, speaker)


def test_assign_speakers_by_largest_overlap():
    turns = [_t(0, 2, "A"), _t(1.8, 4, "B"), _t(6, 7, "A")]
    words = [
        Word(0.2, 0.5, "a"),  # inside A
        Word(1.7, 2.3, "b"),  # 0.3 s in A, 0.5 s in B (turns overlap)
        Word(4.2, 4.4, "c"),  # 0.2 s after B
        Word(5.0, 5.2, "d"),  # 0.8 s from B and A: too far
        Word(5.6, 5.8, "e"),  # 0.2 s before the second A
        Word(6.5, 6.5, "f"),  # zero length, inside A
        Word(9.0, 9.5, "g"),  # after everything
    ]
    assert assign_speakers(words, turns) == ["A", "B", "B", None, "A", "A", None]
    assert assign_speakers(words, []) == [None] * len(words)
    assert assign_speakers([], turns) == []


def test_assign_speakers_sums_a_speakers_turns():
    # A word over A (0.3 s) + A (0.3 s) and B (0.4 s): A overlaps it most in total.
    turns = [_t(0, 1.3, "A"), _t(1.3, 1.7, "B"), _t(1.7, 3, "A")]
    assert assign_speakers([Word(1.0, 2.0, "x")], turns) == ["A"]


def test_assign_speakers_nearest_within_half_second():
    turns = [_t(0, 1, "A"), _t(2, 3, "B")]
    # 0.4 s after A and 0.3 s before B: the nearer wins.
    assert assign_speakers([Word(1.4, 1.7, "x")], turns) == ["B"]
    assert assign_speakers([Word(1.45, 1.5, "x")], turns, max_gap=0.4) == [None]


def test_assign_speakers_many_words_is_fast():
    rng = np.random.default_rng(0)
    starts = np.sort(rng.uniform(0, 3600, 4000))
    turns = [_t(s, s + 2.0, f"S{i % 5}") for i, s in enumerate(starts)]
    words = [Word(t, t + 0.3, "w") for t in np.arange(0, 3600, 0.25)]
    assert len(assign_speakers(words, turns)) == len(words)


def test_split_by_speaker():
    words = [Word(0.0, 0.4, " Hello"), Word(0.5, 0.9, " there."), Word(1.2, 1.5, " Hi!"),
             Word(1.6, 1.9, " Who"), Word(5.0, 5.2, " me?")]  # fmt: skip
    seg = Segment(0.0, 5.2, "Hello there. Hi! Who me?", words, flags=["low_confidence"])
    empty = Segment(10.0, 11.0, "no words", [])
    transcript = Transcript("en", 1.0, 12.0, [seg, empty], model="tiny.en")
    turns = [_t(0.0, 1.0, "A"), _t(1.1, 2.0, "B"), _t(10.2, 10.8, "A")]
    out = split_by_speaker(transcript, turns)
    assert [(s.speaker, s.text, s.start, s.end) for s in out.segments] == [
        ("A", "Hello there.", 0.0, 0.9),
        # "me?" is in no turn and 3 s from any: it stays with its neighbour.
        ("B", "Hi! Who me?", 1.2, 5.2),
        ("A", "no words", 10.0, 11.0),
    ]
    assert all(s.flags == ["low_confidence"] for s in out.segments[:2])
    assert out.words == transcript.words and out.model == "tiny.en"
    assert transcript.segments[0].speaker is None  # the input is not changed
    from actors.diarize import AttributeParams, DiarizationService
    from yivideo.errors import ConfigError
    from yivideo.settings import Settings

    service = DiarizationService(Settings())
    as_dicts = [{"start": t.start, "end": t.end, "speaker": t.speaker} for t in turns]
    got = service.attribute(NodeContext(), AttributeParams(), transcript, as_dicts)
    assert got["transcript"] == out
    with pytest.raises(ConfigError):
        service.attribute(NodeContext(), AttributeParams(), transcript, [{"begin": 1}])
    unknown = split_by_speaker(transcript, [])
    assert [s.speaker for s in unknown.segments] == [None, None]
    assert len(unknown.segments) == 2


def test_rttm_and_json_round_trip():
    turns = [_t(0.5, 2.25, "SPEAKER_00"), _t(2.0, 4.125, "SPEAKER_01"), _t(5, 6, "SPEAKER_00")]
    text = to_rttm(turns, uri="my video")
    lines = text.splitlines()
    assert lines[0] == "SPEAKER my_video 1 0.500 1.750 <NA> <NA> SPEAKER_00 <NA> <NA>"
    assert all(len(line.split()) == 10 for line in lines)
    assert parse_rttm(text + "SPKR-INFO x 1 <NA> <NA> <NA> unknown SPEAKER_00 <NA> <NA>\n") == turns
    with pytest.raises(ValueError, match="line 1"):
        parse_rttm("SPEAKER x 1 0.0")
    doc = json.loads(to_json(turns, duration=6.0))
    assert doc["duration"] == 6.0 and doc["speakers"] == ["SPEAKER_00", "SPEAKER_01"]
    assert doc["turns"][1] == {"start": 2.0, "end": 4.125, "speaker": "SPEAKER_01"}


def test_prepare_audio_formats():
    x = np.sin(np.linspace(0, 200, SAMPLE_RATE)).astype(np.float32)
    assert prepare_audio(x, SAMPLE_RATE).shape == (SAMPLE_RATE,)
    stereo = prepare_audio(np.stack([x, -x * 0], axis=1), SAMPLE_RATE)
    assert np.allclose(stereo, x / 2, atol=1e-6)
    assert np.allclose(prepare_audio(np.stack([x, x]), SAMPLE_RATE), x, atol=1e-6)
    assert prepare_audio(x[::2], 8000).shape == (SAMPLE_RATE,)
    assert prepare_audio(np.zeros(44100, np.float32), 44100).shape == (SAMPLE_RATE,)
    pcm = prepare_audio((x * 32767).astype(np.int16), SAMPLE_RATE)
    assert pcm.dtype == np.float32 and np.allclose(pcm, x, atol=1e-4)
    pcm_stereo = prepare_audio(np.stack([x, x], axis=1) * 32767, SAMPLE_RATE)
    assert np.allclose(pcm_stereo, x * 32767, rtol=1e-5)  # float input is not rescaled
    pcm_stereo = prepare_audio((np.stack([x, x], axis=1) * 32767).astype(np.int16), SAMPLE_RATE)
    assert np.allclose(pcm_stereo, x, atol=1e-4)
    with pytest.raises(MediaError):
        prepare_audio(x, 0)
    with pytest.raises(MediaError):
        prepare_audio(np.zeros((2, 2, 2)), SAMPLE_RATE)
    assert prepare_audio(np.zeros(0, np.float32), 8000).size == 0


def _blobs(centres: int, per: int = 20, spread: float = 0.3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, 192))
    return np.vstack([m + spread * rng.normal(size=(per, 192)) * np.abs(m).mean() for m in means])


def test_estimate_partition_counts_separated_clusters():
    for k in (1, 2, 3, 5):
        labels = estimate_partition(_blobs(k, seed=k), min_size=3)
        assert labels.max() + 1 == k
        assert all(len(set(labels[i * 20 : (i + 1) * 20])) == 1 for i in range(k))
    x = _blobs(4, seed=4)
    assert estimate_partition(x, max_clusters=2).max() + 1 == 2
    assert estimate_partition(_blobs(1), min_clusters=2).max() + 1 == 2
    assert estimate_partition(x[:2]).tolist() == [0, 0]
    assert exact_partition(x, 6).max() + 1 == 6
    assert exact_partition(x[:3], 5).tolist() == [0, 1, 2]


def test_speakers_of_one_window_stay_apart():
    """Two voices CAM++ finds alike (cosine 0.9) merge, unless a window held both."""
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(2, 192))
    c = b + 0.48 * np.linalg.norm(b) / np.sqrt(192) * rng.normal(size=192)
    assert 0.85 < b @ c / np.linalg.norm(b) / np.linalg.norm(c) < 0.95
    windows = 5
    x = np.vstack([v + 0.15 * np.linalg.norm(v) / np.sqrt(192) * rng.normal(size=192)
                   for _ in range(windows) for v in (a, b, c)])
    groups = np.repeat(np.arange(windows), 3)
    assert estimate_partition(x).max() + 1 == 2
    labels = estimate_partition(x, groups=groups)
    assert labels.max() + 1 == 3
    assert all(len(set(labels[groups == w])) == 3 for w in range(windows))
    assert all(len(set(labels[i::3])) == 1 for i in range(3))  # each voice keeps its label


def test_brief_voice_kept_and_pieces_of_a_voice_absorbed():
    """A small cluster far from every large one (a voice that spoke once) stays a speaker;
    a small piece split off a voice, or too few embeddings, joins the nearest voice."""
    rng = np.random.default_rng(3)
    a, b, c = rng.normal(size=(3, 192))

    def around(v: np.ndarray, spread: float, count: int) -> np.ndarray:
        return v + spread * np.linalg.norm(v) / np.sqrt(192) * rng.normal(size=(count, 192))

    piece = around(a, 0.5, 1)[0]  # cosine about 0.9 to a
    x = np.vstack([around(a, 0.15, 30), around(b, 0.15, 30), around(c, 0.15, 5),
                   around(piece, 0.1, 4), around(c, 0.15, 2)])  # fmt: skip
    truth = np.repeat([0, 1, 2, 3, 4], [30, 30, 5, 4, 2])
    labels = absorb_small(x, truth, min_size=10)
    assert labels.max() + 1 == 3
    assert len(set(labels[truth == 2])) == 1 and labels[truth == 2][0] not in labels[:60]
    assert set(labels[truth == 3]) == {labels[0]}  # the piece joins its voice
    assert set(labels[truth == 4]) <= {labels[0], labels[30]}  # two embeddings: too few
    assert absorb_small(x, truth, min_size=10, distinct=None).max() + 1 == 2
    # The estimator keeps the brief voice too (pyannote's size rule alone would lose it).
    found = estimate_partition(x[:65], min_size=10)
    assert found.max() + 1 == 3 and len(set(found[60:65])) == 1


def test_spurious_overlap_speaker_dropped():
    """pyannote pads a speaker with a zero centroid where the segmentation counts more
    overlapping voices than the clustering found: its turns are dropped."""
    from types import SimpleNamespace

    from pyannote.core import Annotation
    from pyannote.core import Segment as Span

    from yivideo.diarization.run import _run

    ann = Annotation()
    ann[Span(0.0, 9.0)] = "SPEAKER_00"
    ann[Span(4.0, 4.5)] = "SPEAKER_01"
    output = SimpleNamespace(speaker_diarization=ann,
                             speaker_embeddings=np.vstack([np.ones(192), np.zeros(192)]))
    pipe = SimpleNamespace(pipeline=lambda audio, hook=None, **kw: output)
    tracks, centroids = _run(pipe, np.zeros(SAMPLE_RATE, np.float32), "u", None)  # type: ignore[arg-type]
    assert tracks == [(0.0, 9.0, "SPEAKER_00")] and list(centroids) == ["SPEAKER_00"]
    output.speaker_embeddings = np.vstack([np.ones(192), np.full(192, 0.5)])
    tracks, centroids = _run(pipe, np.zeros(SAMPLE_RATE, np.float32), "u", None)  # type: ignore[arg-type]
    assert len(tracks) == 2 and len(centroids) == 2


def test_node_specs():
    import actors.diarize  # noqa: F401  registers the service
    from yivideo.nodes import get_node

    speakers = get_node("diarize.speakers")
    assert speakers.inputs == {"audio": "audio"} and speakers.outputs == {"turns": "speaker_turns"}
    schema = speakers.params.model_json_schema()["properties"]
    assert {"num_speakers", "min_speakers", "max_speakers", "clustering_threshold", "chunk_s",
            "pipeline", "device"} <= set(schema)  # fmt: skip
    attribute = get_node("diarize.attribute")
    assert attribute.inputs == {"transcript": "transcript", "turns": "speaker_turns"}
    assert attribute.outputs == {"transcript": "transcript"}
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        speakers.params(min_speakers=3, max_speakers=2)
    with pytest.raises(ValidationError):
        speakers.params(num_speakers=0)
    # long inputs: planned, diarized window by window on the replicas, linked
    window = get_node("diarize.window")
    assert window.inputs == {"audio": "audio"} and window.outputs == {"window": "speaker_window"}
    for clip in ((5.0, 2.0), (-1.0, 3.0), (2.0, 2.0)):
        with pytest.raises(ValidationError) as info:
            window.params(clip=clip)
        assert info.value.errors()[0]["loc"] == ("clip",)
    link = get_node("diarize.link_windows")
    assert link.outputs == speakers.outputs and link.params is speakers.params
    assert get_node("diarize.plan_chunks").outputs == {"chunks": "spans"}


def test_a_window_past_the_end_is_refused_naming_the_clip(service, two):
    from actors.diarize import WindowParams
    from yivideo.errors import ConfigError

    audio = Audio(two.samples, SAMPLE_RATE)
    with pytest.raises(ConfigError) as info:
        service.window(NodeContext(), WindowParams(clip=(audio.duration + 1, audio.duration + 9)),
                       audio)
    assert info.value.details[0]["loc"] == "clip" and "after the end" in str(info.value)


def test_viterbi_switches_only_when_it_pays():
    from yivideo.diarization.resegment import viterbi

    scores = np.array([[0.6, 0.2], [0.6, 0.2], [0.3, 0.5], [0.6, 0.2], [0.2, 0.7], [0.2, 0.7]])
    # One cell for the other label gains 0.2, less than two changes cost: smoothed away.
    assert viterbi(scores, 0.3).tolist() == [0, 0, 0, 0, 1, 1]
    assert viterbi(scores, 0.0).tolist() == [0, 0, 1, 0, 1, 1]
    assert viterbi(scores[:0], 0.3).tolist() == []


def test_split_merged_separates_two_voices_in_one_speaker():
    """Short-window embeddings of two voices under one centroid split it; one voice's
    spread, too few windows or a lax bound do not."""
    from yivideo.diarization.resegment import split_merged

    rng = np.random.default_rng(5)
    a, b, c = rng.normal(size=(3, 192))

    def around(v: np.ndarray, count: int) -> np.ndarray:
        x = v + 0.6 * np.linalg.norm(v) / np.sqrt(192) * rng.normal(size=(count, 192))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    windows = np.vstack([around(a, 20), around(b, 12), around(c, 20)])
    merged = np.vstack([a + b, c]) / np.linalg.norm(np.vstack([a + b, c]), axis=1)[:, None]
    means, parents = split_merged(windows, merged)
    assert parents == [0, 1, 0]
    nearest = np.argmax(windows @ means.T, axis=1)
    groups = [set(nearest[:20]), set(nearest[20:32]), set(nearest[32:])]
    assert all(len(g) == 1 for g in groups) and len(set.union(*groups)) == 3
    assert split_merged(windows, merged, min_windows=13) is None
    assert split_merged(windows, merged, max_new=0) is None
    assert split_merged(windows, merged, max_similarity=-0.5) is None
    one = np.vstack([around(a, 30), around(c, 20)])
    assert split_merged(one, merged) is None


@needs_models
def test_resegment_relabels_a_voice_given_another_label(service):
    """Real audio: a turn labelled as the previous voice (a local speaker that mixed the two
    voices across a pause) gets its own voice back; the speech, the overlapped speech and a
    speaker without a centroid keep their labels."""
    from actors.diarize import SpeakersParams
    from yivideo.diarization.resegment import resegment

    pipe = service._pipeline(SpeakersParams(device="cpu"))
    dlg = make_dialogue(VOICES[:2], 5, seed=1)
    a, b = dlg.turns[0].speaker, dlg.turns[1].speaker

    def clip(t: Turn) -> np.ndarray:
        return dlg.samples[int(t.start * SAMPLE_RATE) : int(t.end * SAMPLE_RATE)][None]

    centroids = {v: np.mean([pipe.embed(clip(t))[0] for t in dlg.turns if t.speaker == v],
                            axis=0) for v in (a, b)}  # fmt: skip
    t0, t1, t2, t3, t4 = dlg.turns
    tracks = [(t0.start, t0.end, a), (t1.start, t1.end, a), (t2.start, t2.end, a),
              (t3.start, t3.end, b), (t3.start + 0.2, t3.start + 0.6, "other"),
              (t4.start, t4.end, "other")]  # fmt: skip
    out = resegment(dlg.samples, tracks, centroids, pipe.embed)
    hyp = [Turn(s, e, k) for s, e, k in out if k != "other"]
    assert der(dlg.turns[:4], hyp) < 0.02 < der(dlg.turns[:4], [Turn(*t) for t in tracks[:4]])
    others = [(s, e) for s, e, k in out if k == "other"]
    assert np.allclose(others, [(t3.start + 0.2, t3.start + 0.6), (t4.start, t4.end)], atol=0.01)
    assert abs(sum(t.duration for t in hyp) - sum(t.duration for t in dlg.turns[:4])) < 0.05
    assert resegment(dlg.samples, tracks, {a: centroids[a]}, pipe.embed) == tracks
